/* Prices one search configuration on the cost model: place it on the budgets,
 * check it fits, replay its schedule (prefill, then every decode pass) against the
 * device profile. This is the one call the search makes into placement and the
 * cost model, so it can move onto the executor interface (harness/exec/executor.h)
 * without the search changing. */
#ifndef PB_SEARCH_PRICE_H
#define PB_SEARCH_PRICE_H
#include <stdint.h>
#include "../../base/check.h"
#include "../../strategies/strategy.h"
#include "../exec/model/device_profile.h"
#include "../serve/serve_options.h"
#include "../serve/serve_stream.h"
#include "search_options.h"
#include "search_space.h"

/* What is searched: the model on N GPUs with these budgets, one workload. */
struct search_problem {
    const struct device_profile *prof;
    const struct model_spec *m;
    struct machine mc;       /* budgets of all N GPUs (and the cpu), the --device-map policy */
    int gpus;                /* N */
    int batch, seq;          /* sequences, prompt tokens each */
    int decode_tokens;       /* greedy tokens after the prefill (0: prefill only) */
    enum dtype dtype;
    /* --objective goodput: the stream every configuration serves (NULL: the fixed
     * batch above). batch is then --max-batch, seq the mean prompt. */
    const struct serve_options *serve;
    const struct serve_request *requests;   /* serve->requests of them, sorted by arrival */
};

/* One configuration as priced (and, with --measure-top, measured). */
struct search_row {
    struct search_config c;  /* stages: the schedule's once priced */
    int index;               /* position in the enumeration: ties rank in this order */
    int fits;                /* 1: placed within the budgets and priced; 0: refused, see reason */
    char reason[PB_ERROR_LEN];
    double latency_ms;       /* predicted wall time of the workload on one copy of the configuration
                                (goodput: the stream's E2E p99) */
    double tokens_per_s;     /* batch x (decode tokens, or prompt tokens) / latency (goodput: output
                                tokens per second over the stream's span) */
    double goodput_rps;      /* goodput: requests within the SLO per second; NAN otherwise */
    int replicas;            /* copies side by side on the N GPUs: N / gpus */
    double machine_tokens_per_s;   /* replicas x tokens_per_s: the throughput objective */
    int n_memory;            /* GPUs in memory[] */
    uint64_t memory[PB_MAX_DEVICES];   /* peak bytes per GPU by the memory model */
    uint64_t memory_max;     /* the fullest GPU's */
    double compute_ms_max;   /* the busiest GPU's compute time */
    double moved_ms_max;     /* the largest per-GPU all-reduce + copy time */
    double idle_ms_mean;     /* mean over its GPUs of idle time in the window */
    double bubble_max;       /* pipelines: the largest stage bubble; NAN elsewhere */
    double gpipe_bound;      /* (p-1)/(V m + p-1); NAN for one pass */
    int rank;                /* 1 = best by the objective among the rows that fit; 0: refused */
    double measured_ms;      /* --measure-top: measured p50; NAN when not measured */
    int measured_rank;       /* rank by the measured objective among those measured; 0: none */
    char measure_reason[PB_ERROR_LEN];   /* why a measurement failed ("" when it did not) */
};

/* What the fit check counts per GPU (docs/METRICS.md, "Search"): "peak". */
extern const char *const search_memory_counted;

/* Fill *row for configuration c. Returns PB_OK when it fits and was priced, PB_ERR
 * when refused (row->reason says why: the strategy's placement, the memory check,
 * the schedule, or the cost model). Never leaves row half-filled. */
int search_price(const struct search_problem *pb, const struct search_config *c, int index,
                 struct search_row *row);
/* The objective's key of a row that fits: lower is better (latency in ms, or
 * minus the machine's tokens/s, or minus goodput). */
double search_objective_key(const struct search_row *row, enum search_objective objective);
#endif

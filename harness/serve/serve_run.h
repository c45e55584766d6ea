/* bench --serve: for every strategy, place the model once, then serve the same
 * request stream at every offered rate, on the cost model (--simulate) or through
 * the CUDA executor (measured: serve_run_on with a target), and report serve.csv,
 * serve.json, requests.csv, serve.svg (and explain.txt). */
#ifndef PB_SERVE_RUN_H
#define PB_SERVE_RUN_H
#include <stdint.h>
#include "../../base/check.h"
#include "../cli/options.h"
#include "serve_metrics.h"
#include "../exec/executor.h"

/* One strategy at one offered rate. */
struct serve_point {
    char strategy[PB_STRATEGY_NAME_LEN];
    double rate;                          /* offered requests/s; INFINITY = all at 0 */
    int ok;                               /* 0: not served, see reason */
    char reason[PB_ERROR_LEN];
    char placement_summary[256];
    int n_devices, groups, max_batch;
    int64_t kv_capacity_tokens;
    struct serve_slo slo;                 /* INFINITY: no limit */
    struct serve_point_metrics met;
    struct serve_totals tot;
    struct serve_request_result *res;     /* owned, n requests */
    int n_res;
    long cost_lookups, cost_evaluations;  /* steps costed; schedules actually replayed */
    double decode_step_ms;                /* a decode step at the point's mean batch and context */
    double prefill_step_ms;               /* a prefill of one mean-length prompt (measured: the mean prompt's) */
    int measured;                         /* 1: step times from the GPUs, not the cost model */
};

/* Where measured serving runs its steps: an executor with a step op (the CUDA
 * executor; the cost model's, which CPU tests drive this path with) on these
 * logical devices and budgets. */
struct serve_target {
    const struct executor_ops *ops;
    struct device_map map;
    struct machine mc;                    /* memory budgets for placement and the KV cache */
    int records;                          /* CUPTI on: per-GPU busy time; 0: unknown */
    const char *weights;                  /* safetensors folder, NULL: random weights */
    struct allreduce_table allreduce_table;
    const struct device_profile *profile; /* the cost-model executor's (tests drive the path with it); CUDA: NULL */
    char device[160];                     /* the GPUs in words, for the table and serve.json */
};

int serve_run(const struct options *o, const struct model_spec *m);
/* The same through t's executor (t NULL: the cost model, as serve_run). */
int serve_run_on(const struct options *o, const struct model_spec *m, const struct serve_target *t);
/* serve/cuda_serve_run.c (the CUDA build): serve_run_on with the CUDA executor on
 * the GPUs --devices / --gpus name; -1 with a message when there are none. */
int serve_measured_run(const struct options *o, const struct model_spec *m);
/* "measured" or "predicted", for reports. */
const char *serve_point_kind(const struct serve_point *p);
void serve_point_free(struct serve_point *p);
/* Mean over devices of busy / span (0..1); NAN if the point has none. */
double serve_point_utilisation(const struct serve_point *p, int device);
#endif

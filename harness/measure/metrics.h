/* The metrics of DESIGN.md, computed from trace records of one timed iteration
 * (or averaged over iterations). Definitions are fixed; reports and tests rely on them. */
#ifndef PB_METRICS_H
#define PB_METRICS_H
#include "trace.h"
#include "../../strategies/strategy.h"

/* PB_WORK_KINDS, PB_WORK_UNTAGGED: trace.h. */

struct gpu_metrics {
    double window_ms;        /* first step start to last step end, all GPUs (same for all) */
    double compute_ms;       /* union of compute-kernel intervals */
    double comm_ms;          /* union of NCCL kernel intervals */
    double copy_ms;          /* union of memcpy intervals */
    double idle_ms;          /* window - union of all */
    double utilisation;      /* union of all kernel intervals / window */
    double own_span_ms;      /* HTA-style: this GPU's first to last kernel */
    /* idle_ms by cause (idle_cause.h); NAN until the schedule is joined with the trace. */
    double idle_peer_wait_ms;   /* waiting on a step of another device */
    double idle_host_ms;        /* dependencies satisfied, nothing launched yet */
    double idle_other_ms;       /* the rest: before untagged work, after this GPU's last */
    /* Bytes / FLOPs of this GPU's steps over the window against the profile's measured
     * copy rate / GEMM rate (hw_use.h); NAN without a profile. */
    double mbu, mfu;
    /* Busy time by the kind of step that issued the work (union per kind; index
     * enum step_kind, PB_WORK_UNTAGGED last); NAN until joined with the schedule. */
    double work_ms[PB_WORK_KINDS];
    int known;               /* 0 when busy time could not be measured (no CUPTI) */
};

struct link_metrics {
    int src, dst;
    uint64_t bytes;
    double ms;               /* union of copy intervals on this pair */
    double gbps;             /* bytes / ms */
};

struct iteration_metrics {
    int n_devices;
    struct gpu_metrics gpu[PB_MAX_DEVICES];
    int n_links;
    struct link_metrics link[PB_MAX_DEVICES * 2];
    double allreduce_ms;     /* union of NCCL intervals over all GPUs */
};

/* Length of the union of intervals [start, end) in ns; sorts them in place. */
struct metrics_span {
    uint64_t start, end;
};
uint64_t metrics_union_ns(struct metrics_span *s, int n);

/* Metrics of iteration `iteration` of a trace (all records if iteration < 0). */
int metrics_iteration(const struct trace *t, int iteration, struct iteration_metrics *out);
/* Exact totals of iteration `iteration` (all records if < 0) from the records. */
int metrics_totals(const struct trace *t, int iteration, struct activity_totals *out);
/* Adds a pass's totals, its clock shifted by `offset` ns, to acc (zeroed to start). The
 * pass must not overlap what acc holds: then unions add up exactly. */
int metrics_totals_append(struct activity_totals *acc, const struct activity_totals *pass, uint64_t offset);
/* Mean of per-iteration metrics over iterations [0, iters). */
int metrics_mean(const struct trace *t, int iters, struct iteration_metrics *out);
/* p-th percentile (0..100) of values, linear interpolation; sorts a copy. */
double metrics_percentile(const double *values, int n, double p);
/* Bubble of a pipeline stage: idle / window for the stage's device. */
double metrics_bubble(const struct iteration_metrics *m, int device);
/* GPipe bound (p-1)/(m+p-1); with V interleaved chunks per stage (p-1)/(V*m+p-1). */
double metrics_gpipe_bound(int stages, int microbatches, int virtual_stages);
#endif

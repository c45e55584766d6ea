/* Activity records on one clock: what CUPTI measured on the GPUs, or what the
 * cost model predicted. Metrics, trace.json and plots read only these. */
#ifndef PB_TRACE_H
#define PB_TRACE_H
#include <stddef.h>
#include <stdint.h>
#include "../../base/limits.h"
#include "../../strategies/strategy.h"

/* Kinds of work a GPU's busy time is split into: the step kinds, then work no step claims. */
#define PB_WORK_KINDS (STEP_ALLGATHER + 2)
#define PB_WORK_UNTAGGED (STEP_ALLGATHER + 1)

enum record_kind {
    REC_KERNEL,      /* compute kernel */
    REC_COMM,        /* NCCL kernel (recognised by name) */
    REC_MEMCPY,      /* memcpy of any direction, including peer-to-peer */
    REC_MEMSET,
    REC_RANGE        /* NVTX/host range: strategy, iteration, microbatch, stage, step */
};

enum copy_kind { COPY_NONE, COPY_HTOD, COPY_DTOH, COPY_DTOD, COPY_PTOP };

struct record {
    enum record_kind kind;
    int device;              /* GPU index in the run (schedule device), -1 for host ranges */
    int stream;              /* stream index within the device (CUPTI stream id mapped) */
    uint64_t start_ns, end_ns;
    int iteration;           /* timed iteration it belongs to (warm-up excluded) */
    enum copy_kind copy;
    int src_device, dst_device;
    uint64_t bytes;
    uint32_t correlation;
    int has_step;            /* 1: step and microbatch below are known (0 in zeroed records) */
    int step, microbatch;    /* schedule step that issued it; its microbatch, -1 where the
                              * schedule has one (single, naive: nothing to label) */
    char name[PB_LABEL_LEN];         /* kernel name (truncated) or range label */
};

/* Exact activity totals of one iteration on one clock (ns): unions of intervals per
 * GPU and kind, the span of device activity, peer links. metrics.c computes them from
 * records; an executor that keeps records of only some passes sums them pass by pass
 * (passes never overlap, so the sum of their unions is the iteration's union). */
struct activity_totals {
    int iteration;
    int n_device_records;
    uint64_t first_ns, last_ns;                       /* device activity, all GPUs */
    uint64_t compute_ns[PB_MAX_DEVICES], comm_ns[PB_MAX_DEVICES], copy_ns[PB_MAX_DEVICES];
    uint64_t busy_ns[PB_MAX_DEVICES], kernel_ns[PB_MAX_DEVICES];
    uint64_t kernel_first_ns[PB_MAX_DEVICES], kernel_last_ns[PB_MAX_DEVICES];
    int n_kernels[PB_MAX_DEVICES];
    uint64_t comm_all_ns;                             /* NCCL union over all GPUs */
    int n_links;
    struct {
        int src, dst;
        uint64_t bytes, ns;
    } link[PB_MAX_DEVICES * 2];
    /* Idle time by cause and busy time by step kind (idle_cause.h), split by the
     * executor from every pass's intervals where the records are a sample; 0: not
     * split (then unknown). ms per GPU; causes: peer wait, host, other. */
    int attributed;
    double idle_cause_ms[PB_MAX_DEVICES][3];
    double work_ms[PB_MAX_DEVICES][PB_WORK_KINDS];
};

/* Which passes of a program the records show, where not all of them do. */
#define TRACE_MAX_SHOWN 16
struct trace_sample {
    int passes;                  /* passes per iteration (prompt included); 0: every record kept */
    int n_shown;
    int shown[TRACE_MAX_SHOWN];  /* pass indices (0 = the prompt), ascending */
};

struct trace {
    int n, cap;
    struct record *rec;
    int n_devices;
    int predicted;           /* 1: from the cost model, not measured */
    uint64_t dropped;        /* CUPTI records lost; reported, never hidden */
    int busy_known;          /* 0: no activity records (CUPTI unavailable): busy = unknown */
    struct trace_sample sample;
    /* Exact totals per iteration where rec holds only sample.shown's passes;
     * metrics read these instead of the records (NULL: the records are complete). */
    int n_totals;
    struct activity_totals *totals;
};

void trace_init(struct trace *t, int n_devices);
void trace_free(struct trace *t);
int trace_add(struct trace *t, const struct record *r);
/* Totals of `iteration` to keep beside sampled records (copied). */
int trace_add_totals(struct trace *t, const struct activity_totals *a);
const struct activity_totals *trace_totals_of(const struct trace *t, int iteration);
/* "decode passes 1, 2, 128, 511, 512 of 512 shown; totals cover all" into buf;
 * 0 (and buf empty) when the trace shows every pass. */
int trace_sample_describe(const struct trace *t, char *buf, size_t n);
#endif

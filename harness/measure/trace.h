/* Activity records on one clock: what CUPTI measured on the GPUs, or what the
 * cost model predicted. Metrics, trace.json and plots read only these. */
#ifndef PB_TRACE_H
#define PB_TRACE_H
#include <stdint.h>
#include "../../base/limits.h"

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

struct trace {
    int n, cap;
    struct record *rec;
    int n_devices;
    int predicted;           /* 1: from the cost model, not measured */
    uint64_t dropped;        /* CUPTI records lost; reported, never hidden */
    int busy_known;          /* 0: no activity records (CUPTI unavailable): busy = unknown */
};

void trace_init(struct trace *t, int n_devices);
void trace_free(struct trace *t);
int trace_add(struct trace *t, const struct record *r);
#endif

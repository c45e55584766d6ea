/* What a CUDA executor holds, shared by cuda_executor.c (setup) and
 * cuda_exec_issue.c (issuing passes). Not for other callers: they use executor.h. */
#ifndef PB_CUDA_EXEC_INTERNAL_H
#define PB_CUDA_EXEC_INTERNAL_H
#include <cuda_runtime.h>
#include <nccl.h>
#include <nvtx3/nvToolsExt.h>
#include "../kernels/llama.h"
#include "check.h"
#include "executor.h"

#define EXEC_MAX_PARTS (2 * PB_MAX_DEVICES + 2)
#define EXEC_MAX_STREAMS 4

#define CUDA_TRY(call)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return pb_fail("%s:%d: %s failed: %s (check the GPU with nvidia-smi; --devices picks " \
                           "others)", __FILE__, __LINE__, #call, cudaGetErrorString(e_));          \
    } while (0)

#define NCCL_TRY(call)                                                                             \
    do {                                                                                           \
        ncclResult_t r_ = (call);                                                                  \
        if (r_ != ncclSuccess)                                                                     \
            return pb_fail("%s:%d: %s failed: %s (NCCL_DEBUG=WARN says more; set "                 \
                           "NCCL_NVLS_ENABLE=0 where NVLink multicast is off)", __FILE__, __LINE__, \
                           #call, ncclGetErrorString(r_));                                         \
    } while (0)

/* One llama part: a device's layers (or its tensor-parallel shard), and whether
 * its weights live in host memory (accelerate's cpu offload). */
struct part_slot {
    struct llama_part_desc d;
    int logical;               /* logical device it runs on */
    int host;                  /* weights on host, streamed per call */
    struct llama_part *p;
};

/* A schedule prepared for issuing: issue order, part of every step, events. */
struct plan_exec {
    const struct schedule *s;
    int seq;                   /* tokens per sequence in this pass */
    int *order;                /* issue order; the members of a collective are adjacent */
    int *group_last;           /* per order position: last position of its collective, else itself */
    int *part;                 /* per step: part slot used, -1 for none */
    int *pre_from;             /* per step: part holding the rows, to copy from first (same device) */
    int *src_part, *dst_part;  /* STEP_COPY: parts of the two ends */
    cudaEvent_t *ev;           /* per step, recorded after it */
};

struct executor {
    struct exec_config c;
    int n_parts;
    struct part_slot parts[EXEC_MAX_PARTS];
    int embed_part, head_part;               /* non-tp: the parts holding them */
    int n_streams;                           /* per logical device */
    cudaStream_t stream[PB_MAX_DEVICES][EXEC_MAX_STREAMS];
    cudaEvent_t join[PB_MAX_DEVICES][EXEC_MAX_STREAMS];
    cudaEvent_t start, stop, fork;
    int tp;                                  /* tensor-parallel placement */
    ncclComm_t comm[PB_MAX_DEVICES];
    int have_comms;
    void *gather[PB_MAX_DEVICES];            /* tp: all-gathered logits [world][rows][vocab/world] */
    int *d_next;                             /* argmax output where head and embed sit apart */
    int *d_pos, *h_pos;                      /* decode position for graph replays (pinned slots) */
    int *h_prompt;                           /* pinned prompt tokens [batch * seq] */
    struct plan_exec pre, dec;
    int last_rows, last_only;                /* what the last pass left in the logits */
    nvtxDomainHandle_t nvtx;
    cudaGraphExec_t graph;
    int graph_state;                         /* 0 untried, 1 captured, -1 not possible */
};

/* cuda_exec_issue.c */
int exec_prepare_plan(struct executor *e, const struct schedule *s, int seq, struct plan_exec *out);
void exec_free_plan(struct plan_exec *pe);
/* Issue one pass. prev: the pass before (decode: its argmax feeds this embed), or NULL. */
int exec_issue_pass(struct executor *e, struct plan_exec *pe, const struct plan_exec *prev, int pos,
                    int use_pos_device, int last_only, int argmax, int capturing, struct trace *t,
                    int iteration);
#endif

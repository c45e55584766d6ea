/* What a CUDA executor holds, shared by cuda_executor.c (setup) and
 * cuda_exec_issue.c (issuing passes). Not for other callers: they use executor.h. */
#ifndef PB_CUDA_EXEC_INTERNAL_H
#define PB_CUDA_EXEC_INTERNAL_H
#include <cuda_runtime.h>
#include <nccl.h>
#include <nvtx3/nvToolsExt.h>
#include "../../../kernels/llama.h"
#include "../../../kernels/allreduce.h"
#include "../../../base/check.h"
#include "../../measure/cupti.h"
#include "../executor.h"
#include "../step_place.h"

/* What the CUDA executors (this one and exec/mpi/'s rank executor) take from
 * exec_config, unpacked: the program's two schedules and the device map. */
struct cuda_config {
    const struct model_spec *m;
    const struct placement *p;
    const struct program *g;          /* the passes; prefill and decode are its schedules */
    const struct schedule *prefill;   /* the prompt pass */
    const struct schedule *decode;    /* the decode template, NULL for prefill-only runs */
    int n_devices;
    int ordinal[PB_MAX_DEVICES];      /* logical device -> CUDA ordinal */
    int batch, seq, decode_tokens;
    uint64_t seed;                    /* weights and prompt tokens */
    const char *weights;              /* safetensors folder, or NULL for random weights */
    const int *prompt;                /* [batch * seq] prompt tokens, or NULL: drawn from seed */
    int use_graph;                    /* replay prefill and decode passes from CUDA graphs where possible */
    const char *label;                /* strategy name, for NVTX ranges */
    enum allreduce_algo allreduce;    /* tp sums: --allreduce */
    struct allreduce_table allreduce_table;
};
/* Unpack c; PB_ERR when the program's devices outnumber the map's. */
int cuda_config_from(const struct exec_config *c, struct cuda_config *out);

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

/* The parts of a placement: the same layout in both executors (and on every MPI
 * rank, which allocates only its own device's). */
struct part_layout {
    int n_parts;
    struct part_slot parts[EXEC_MAX_PARTS];
    int embed_part, head_part;   /* the parts holding them (tensor parallel: rank 0's, first and last stage) */
    int tp;                      /* tensor parallel: every chunk of layers a part on each rank of its group */
    int tp_degree;               /* tensor parallel: ranks per group (tp: every device) */
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
    struct step_here *here;    /* per step: what this process does with it (exec_prepare_plan) */
    cudaEvent_t *ev;           /* per step, recorded after it; NULL where it is not here */
};

struct executor;

/* How rows cross devices, the one thing that differs between the single process
 * (every device: peer copies, cuda_exec_issue.c) and an MPI rank (one device:
 * NCCL send/receive, exec/mpi/cuda_mpi_exec.c). The issue loop, the collectives,
 * the token feed and the logits read-back are the same code for both. */
struct exec_transport {
    /* What this process does with step i of s, filled once per plan. */
    void (*place)(const struct executor *e, const struct schedule *s, int i, struct step_here *out);
    /* n bytes from src on logical device src_dev to dst on dst_dev, issued on s;
     * where one end lies in another process its pointer is NULL and this call
     * is this process's half of the move. */
    int (*move)(struct executor *e, void *dst, int dst_dev, const void *src, int src_dev, size_t n,
                cudaStream_t s);
    /* 1 when a kernel on logical device a can write b's buffers directly (then
     * the head's argmax writes the embedding's token rows in place). */
    int (*same_memory)(const struct executor *e, int a, int b);
    /* The members of one collective issued here, on peer memory where --allreduce
     * (or auto, by size) gives the call to it: *taken = 1; else *taken = 0 and
     * NCCL runs them on comm[device]. */
    int (*peer_collective)(struct executor *e, struct plan_exec *pe, int first, int last, int last_only, int *taken);
};

/* cuda_exec_issue.c: every logical device in this process, peer copies between GPUs. */
extern const struct exec_transport exec_peer_transport;

struct capture_nodes;   /* cuda_exec_graph.c: nodes captured so far, and their streams */
struct exec_gate;       /* cuda_exec_gate.c: holds the GPU until a profiled iteration's first graph is launched */

struct executor {
    struct cuda_config c;
    const struct exec_transport *transport;  /* exec_peer_transport, or an MPI rank's */
    struct part_layout l;
    int n_streams;                           /* per logical device */
    cudaStream_t stream[PB_MAX_DEVICES][EXEC_MAX_STREAMS];
    cudaEvent_t join[PB_MAX_DEVICES][EXEC_MAX_STREAMS];
    cudaEvent_t start, stop, fork;
    ncclComm_t comm[PB_MAX_DEVICES];
    int have_comms;
    struct peer_group *peer_ar[PB_MAX_DEVICES]; /* per tp group: the peer-memory all-reduce, or NULL */
    void *gather[PB_MAX_DEVICES];            /* tp: all-gathered logits [world][rows][vocab/world] */
    int *d_next;                             /* argmax output where head and embed sit apart */
    int *d_pos, *h_pos;                      /* decode position for graph replays (pinned slots) */
    int *h_prompt;                           /* pinned prompt tokens [batch * seq] */
    struct plan_exec pre, dec;
    int last_rows, last_only;                /* what the last pass left in the logits */
    nvtxDomainHandle_t nvtx;
    cudaGraphExec_t graph;                   /* one decode pass */
    int graph_state;                         /* 0 untried, 1 captured, -1 not possible */
    cudaGraphExec_t pre_graph;               /* the prefill pass */
    int pre_graph_state;
    unsigned char peer[PB_MAX_DEVICES][PB_MAX_DEVICES];   /* logical a can access b's memory */
    struct capture_nodes *capture;           /* non-NULL while a pass is being captured */
    int *serve_pos[PB_MAX_DEVICES];          /* serving: per-slot positions on each logical device
                                              * (cuda_exec_serve.c), allocated at the first decode step */
    int *seq_pos[PB_MAX_DEVICES];            /* serve_pos during a serving decode step, put in every
                                              * call; NULL otherwise */
    struct exec_gate *gate;                  /* NULL until a profiled iteration is gated */
};

/* cuda_executor.c: every stream waits for the origin stream (fork), or the origin for every stream (join). */
int exec_fork_streams(struct executor *e, cudaEvent_t ev);
int exec_join_streams(struct executor *e);

/* cuda_exec_gate.c: a host function on s holds the GPU until exec_gate_open (or
 * 10 s); open is idempotent and a no-op where nothing was closed. Closed only before
 * a profiled iteration whose first pass is a graph (PB_CUPTI_MODE=gate). */
int exec_gate_close(struct executor *e, cudaStream_t s);
void exec_gate_open(struct executor *e);
void exec_gate_free(struct executor *e);

/* cuda_exec_graph.c */
/* Capture the prefill (and decode) pass into CUDA graphs where the schedule allows:
 * no collectives, and peer access between every pair of GPUs; otherwise (or when a
 * capture fails) passes are launched directly. */
int exec_capture_graphs(struct executor *e);
/* Replay a captured pass on the origin stream, between a join and a fork. */
int exec_graph_replay(struct executor *e, cudaGraphExec_t g);
/* While capturing: the nodes the step just issued on s belong to `where`. */
int exec_capture_attribute(struct executor *e, cudaStream_t s, const struct cupti_place *where);
/* A copy between logical devices; same GPU: device to device; while capturing,
 * a plain copy through unified addressing (a peer copy cannot be captured). */
int exec_copy(struct executor *e, void *dst, int dst_logical, const void *src, int src_logical, size_t n,
              cudaStream_t s);

/* The microbatch a trace labels a step with: none where the schedule has one. */
static inline int pe_microbatch(const struct step *st, const struct schedule *s)
{
    return s->microbatches > 1 ? st->microbatch : -1;
}

/* cuda_exec_layout.c: shared with the MPI executor (exec/mpi/cuda_mpi_exec.c). */
/* Parts of c->p; part devices are ordinal[logical]. */
int exec_build_parts(const struct cuda_config *c, const int *ordinal, struct part_layout *l);
/* The part a compute step runs on, -1 for none. */
int exec_part_for(const struct part_layout *l, const struct step *st);
/* Tensor parallel: device's part for a step of `kind` (embed, head, or one holding
 * `layer`), -1 for none. */
int exec_tp_part(const struct part_layout *l, int device, enum step_kind kind, int layer);
/* The embedding part that reads the greedy tokens picked on `device` (tensor
 * parallel: rank r of the last stage feeds rank r of the first). */
int exec_token_part(const struct part_layout *l, int device);
/* Issue order and the parts along each microbatch's way; pe->ev is allocated
 * (all NULL): the caller creates the events of the steps it issues. */
int exec_layout_plan(const struct part_layout *l, const struct schedule *s, int seq, struct plan_exec *pe);
/* Frees a plan and destroys its events. */
void exec_free_plan(struct plan_exec *pe);
/* An NVTX range in the placebench domain, so nsys shows the schedule. */
void exec_nvtx_push(nvtxDomainHandle_t domain, const char *label);
/* Compute step i of pe on its part (the head without the greedy argmax). */
int exec_compute(const struct part_layout *l, const struct plan_exec *pe, int i, int hidden,
                 const struct llama_call *call, cudaStream_t s);

/* cuda_exec_issue.c */
/* The plan of s, with e->transport's place for every step and events for the
 * steps this process has a role in. */
int exec_prepare_plan(struct executor *e, const struct schedule *s, int seq, struct plan_exec *out);
/* Issue one pass. prev: the pass before, whose steps feed[0..n_feed) (the greedy
 * tokens) this pass's embeds wait for; NULL for the first pass. */
int exec_issue_pass(struct executor *e, struct plan_exec *pe, const struct plan_exec *prev,
                    const struct token_feed *feed, int n_feed, int pos, int use_pos_device, int last_only,
                    int argmax, int capturing, struct trace *t, int iteration);

/* cuda_executor.c: every pass of the program (prompt, then the decode template
 * at each pass's position, fed the tokens of the pass before), from graphs where
 * captured; between the caller's fork and join of the streams. */
int exec_issue_passes(struct executor *e, struct trace *t, int iteration);

/* cuda_executor.c: the entry points cuda_exec_ops.c puts behind executor.h. */
int executor_create(const struct cuda_config *c, struct executor **out);
void executor_destroy(struct executor *e);
/* One iteration (every pass of the program), timed with CUDA events; host ranges
 * (tagged `iteration`) go to t when t is not NULL. */
int executor_run(struct executor *e, int iteration, struct trace *t, double *ms);
/* Logits of the last pass, gathered to the host as bf16 bits [rows][vocab];
 * *out is malloc'ed. Generated tokens [batch] likewise (NULL without generation).
 * An MPI rank calls them on the rank that holds the head (tp: rank 0) or the embedding. */
int executor_logits(struct executor *e, uint16_t **out, int *rows, int *vocab);
int executor_tokens(struct executor *e, int **out, int *count);
/* cuda_exec_serve.c: one serving step (executor.h, struct exec_step), timed with
 * CUDA events; host ranges to t. serve_free releases what the steps allocated. */
int executor_serve_step(struct executor *e, const struct exec_step *x, struct trace *t, double *ms);
void executor_serve_free(struct executor *e);
/* 1 when prefill or decode passes ran from a CUDA graph. */
int executor_used_graph(const struct executor *e);
#endif

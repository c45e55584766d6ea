/* The executor interface: one program (strategies/strategy.h: the prompt pass, the
 * decode template and the pass table) run on logical devices. The CUDA executor
 * (exec/cuda/), the MPI rank executor (exec/mpi/) and the cost model (exec/model/)
 * fill struct executor_ops; the one sweep (run/sweep.c) drives any of them the same
 * way: create, warm-up, timed and profiled runs, outputs, destroy. Owner of the
 * struct: this file. A new executor is one file that fills it, and one line in
 * exec/registry.c. */
#ifndef PB_EXECUTOR_H
#define PB_EXECUTOR_H
#include <stddef.h>
#include <stdint.h>
#include "../../base/check.h"
#include "../../models/model_spec.h"
#include "../../strategies/strategy.h"
#include "../measure/trace.h"
#include "../../kernels/allreduce_algo.h"

struct point_result;

/* Logical device -> GPU ordinal, computed once per run and passed down (--devices
 * 0,0 puts two logical devices on GPU 0; the cost model shares that GPU's engines). */
struct device_map {
    int n;
    int ordinal[PB_MAX_DEVICES];
};

/* What a group of processes needs to run one sweep together (MPI: one rank per GPU).
 * A single process has the empty world: exec_world_single(), every call a pass-through. */
struct exec_world {
    int rank, size;
    /* Every rank learns whether all passed rc == PB_OK; a failing rank's message wins. */
    int (*agree)(const struct exec_world *w, int rc, const char *phase);
    /* *v becomes the largest value over the ranks (an iteration's latency). */
    int (*max)(const struct exec_world *w, double *v, const char *phase);
    /* Moves n bytes of buf from rank `from` to rank 0 (outputs live on one rank). */
    int (*to_rank0)(const struct exec_world *w, int from, void *buf, size_t n, const char *what);
    /* Rank 0 gets every rank's records in *merged, on its clock (others: left empty). */
    int (*gather)(const struct exec_world *w, const struct trace *local, struct trace *merged);
    /* Rank 0, after each point: what the world records of it (MPI: ranks.csv rows). May be NULL. */
    void (*point_done)(const struct exec_world *w, const struct point_result *r);
    void *impl;
};
const struct exec_world *exec_world_single(void);

struct device_profile;

struct exec_config {
    const struct model_spec *m;
    const struct placement *p;
    const struct program *g;             /* what one iteration runs */
    const struct device_map *map;
    const struct exec_world *world;      /* never NULL: exec_world_single() for one process */
    uint64_t seed;                       /* weights and prompt tokens */
    const char *weights;                 /* safetensors folder, or NULL for random weights */
    const int *prompt;                   /* [batch * seq] prompt tokens, or NULL: drawn from seed */
    int use_graph;                       /* CUDA: replay passes from CUDA graphs where possible */
    const char *label;                   /* strategy name, for NVTX ranges and messages */
    const struct device_profile *profile;   /* the cost model's device profile */
    enum allreduce_algo allreduce;       /* tp sums: --allreduce (auto picks by size from the table) */
    struct allreduce_table allreduce_table;
    int every_pass;                      /* cost model: records of every pass, not a sample (tests) */
};

/* An iteration's outputs, as this process holds them (malloc'ed; NULL where it holds none). */
struct exec_outputs {
    uint16_t *logits;                    /* bf16 bits [rows][vocab] of the last pass */
    int rows, vocab;
    int *tokens;                         /* greedy tokens [count], generate mode only */
    int count;
    int logits_rank, tokens_rank;        /* the world rank that holds each */
    int graph;                           /* 1: passes were replayed from CUDA graphs */
};

/* One serving step (harness/serve/, continuous batching): `batch` sequences in KV
 * slots [slot0, slot0 + batch) of a program planned for every slot, each at its own
 * position. The schedule is the strategy's plan for the step's shape, its batch
 * offsets moved to slot0; the KV cache persists between steps. */
struct exec_step {
    const struct schedule *s;
    int slot0, batch;
    int seq;                  /* tokens per sequence: a prompt's length (prefill, pos 0) or 1 (decode) */
    int pos;                  /* decode: the largest position below (the cache bound checked) */
    const int *tokens;        /* [batch * seq]: the prompts (prefill), each slot's last token (decode) */
    const int *slot_pos;      /* decode: [batch] each slot's position, -1 for an empty one; NULL: prefill */
    int *next;                /* out [batch]: each sequence's greedy next token; NULL: not wanted */
};

struct executor_ops {
    const char *name;                    /* "cuda", "mpi", "model" */
    int predicts;                        /* 1: a model, not a measurement: one run stands for every iteration */
    int copies_are_kernels;              /* 1: copies show as NCCL kernels; bytes come from the schedule */
    /* Allocate and load what c->g needs; PB_ERR with a message when it cannot run here. */
    int (*create)(const struct exec_config *c, void **state);
    /* One iteration (every pass of the program); *ms its latency; with t, its records
     * (or, where collect is set, its host ranges) go to t tagged `iteration`. */
    int (*run)(void *state, int iteration, struct trace *t, double *ms);
    /* Device activity recording on or off (CUPTI); NULL when run() writes every record. */
    int (*profiling)(void *state, int on);
    /* Activity recorded since the last call, into t as `iteration` (t NULL: dropped). */
    int (*collect)(void *state, struct trace *t, int iteration);
    /* The last iteration's outputs. */
    int (*outputs)(void *state, struct exec_outputs *out);
    void (*destroy)(void *state);
    /* GPU memory in use (total - free) on the GPU of each logical device this process
     * runs (0 for the others), read before create and after: the measured peak beside
     * the memory model's prediction. NULL: nothing to measure (the cost model). */
    int (*memory_in_use)(const struct exec_config *c, uint64_t *used);
    /* One serving step on the state create made from a program of every slot; *ms its
     * latency; device records (or, where collect is set, host ranges) to t. NULL: it cannot serve. */
    int (*step)(void *state, const struct exec_step *x, struct trace *t, double *ms);
};

/* The registry: "cuda" and "model" in every build, "mpi" in bench-mpi. */
extern const struct executor_ops cuda_executor_ops, model_executor_ops, mpi_executor_ops;
const struct executor_ops *executor_find(const char *name);
/* exec/cuda: GPU memory in use (total - free) on each of n CUDA ordinals. */
int executor_gpu_used(const int *ordinal, int n, uint64_t *used);
#endif

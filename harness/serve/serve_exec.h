/* The serving engine's executor where an executor runs every step's sequences
 * (executor.h's step op): the CUDA executor, measured, or the cost model, which
 * prices the very steps (tests drive it so). One executor is created per strategy
 * from a program of every KV slot; each group of the engine owns a range of
 * slots, a request takes the lowest free slot of its group at its prefill and
 * gives it back with its last token. A prefill runs one pass per admitted prompt
 * (prompts differ in length); a decode step runs the group's slots up to its
 * highest one in use, each at its own position, the empty ones left alone. Each
 * step's cost is its latency (CUDA events) and, where the executor writes device
 * records (CUPTI; the cost model), per-device activity from its trace, as the
 * cost-model path reads it (serve_cost_from_trace). */
#ifndef PB_SERVE_EXEC_H
#define PB_SERVE_EXEC_H
#include <stdint.h>
#include "../exec/executor.h"
#include "serve_engine.h"

struct serve_exec_config {
    const struct executor_ops *ops;       /* must have a step op */
    const struct model_spec *m;
    const struct strategy *st;
    const struct placement *p;
    const struct device_map *map;
    enum dtype dtype;
    uint64_t seed;                        /* weights and prompts */
    const char *weights;                  /* safetensors folder, NULL: random weights */
    const struct device_profile *profile; /* the cost model's */
    enum allreduce_algo allreduce;
    struct allreduce_table allreduce_table;  /* --allreduce auto's sizes (run/predict.h) */
    int records;                          /* 1: turn device activity recording on (ops->profiling) */
};

struct serve_exec {
    struct serve_exec_config c;
    void *state;
    int slots, groups, group_cap;         /* slots = groups x group_cap */
    int max_prompt, max_context;          /* what the executor was sized for */
    int64_t max_positions;                /* requests needing more are refused by the engine, never run */
    const struct serve_request *req;      /* the stream being served */
    int n_req;
    int *slot_of;                         /* per request: its slot, -1 */
    int *done;                            /* per request: tokens produced */
    int **tokens;                         /* per request: its output tokens, owned */
    unsigned char *slot_used;
    int *scratch;                         /* prompt rows, positions, tokens of one step */
    struct program g;                     /* what the executor was created from (it keeps pointers in) */
    int have_program;
    long steps, passes;
    double decode_ms, prefill_ms;         /* since reset: decode steps' and prefill passes' latency */
    long decodes, prefills;
};

/* Create the executor for lengths up to those of req[0..n) (the same at every
 * rate) that need at most max_positions positions (longer ones the engine
 * refuses: they do not size the KV cache), max_batch sequences in `groups`
 * groups, and run one warm-up prefill and decode step. -1 with a message (the
 * executor's own when it cannot run here). */
int serve_exec_open(struct serve_exec *x, const struct serve_exec_config *c, const struct serve_request *req, int n,
                    int max_batch, int groups, int64_t max_positions);
/* Start serving stream req[0..n) (the lengths open saw, any arrivals): every slot free. */
int serve_exec_reset(struct serve_exec *x, const struct serve_request *req, int n);
void serve_exec_close(struct serve_exec *x);
/* The engine's step_cost callback (ctx = struct serve_exec *). */
int serve_exec_step(void *ctx, const struct serve_step_shape *shape, struct serve_step_cost *out);
struct serve_executor serve_exec_executor(struct serve_exec *x);
/* Request i's output tokens of the stream last served (the executor's greedy
 * tokens; -1 where it computes none, as the cost model). */
const int *serve_exec_tokens(const struct serve_exec *x, int i);
#endif

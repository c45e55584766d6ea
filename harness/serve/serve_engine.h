/* Continuous batching over a placement, executor-agnostic. The engine decides, at
 * every step boundary, what the next engine step is (a prefill of newly admitted
 * requests, or one decode token for every running sequence) and asks an executor
 * one question: what does that step cost? The cost model answers it from the
 * step's shape (serve_cost.h); an executor with a step op (executor.h: the CUDA
 * executor, measured) answers it by running the step's sequences (serve_exec.h).
 *
 * Policy (docs/METRICS.md, "Serving"): first come, first served; a prefill of the
 * waiting requests runs before the next decode step (vLLM's default without chunked
 * prefill); a request joins the decode batch at the first step boundary after its
 * prefill, whose end is its first token, and leaves when its last token is out.
 * A request reserves KV cache for prompt + output tokens on admission, so no
 * sequence is ever preempted. `groups` independent batches are in flight (the
 * pipeline's microbatch groups; 1 elsewhere), each at most ceil(max_batch / groups)
 * sequences; a group's step waits for the devices it uses to be free. */
#ifndef PB_SERVE_ENGINE_H
#define PB_SERVE_ENGINE_H
#include <stdint.h>
#include "../../strategies/strategy.h"
#include "serve_stream.h"

/* One engine step as the executor sees it: `batch` sequences, `seq` new tokens each
 * (prefill: the longest prompt of the step; decode: 1), attending to `context`
 * positions (prefill: seq; decode: the mean over the batch, rounded up). */
struct serve_step_shape {
    enum run_mode mode;
    int batch, seq, context;
    int group;                  /* the engine's group that runs it */
    const int *req;             /* its requests, `batch` indices into the stream (an executor that
                                 * runs the sequences themselves needs them; the cost model does not) */
};

/* What one step costs, measured from its start. Devices the step does not use have
 * first_ms = last_ms = NAN and zero busy time. */
struct serve_step_cost {
    double latency_ms;                  /* start to the step's last activity: its tokens are out */
    int n_devices;
    double first_ms[PB_MAX_DEVICES];    /* the device's first activity */
    double last_ms[PB_MAX_DEVICES];     /* the device's last activity ends */
    double compute_ms[PB_MAX_DEVICES], comm_ms[PB_MAX_DEVICES], copy_ms[PB_MAX_DEVICES];
    double busy_ms[PB_MAX_DEVICES];     /* union of all activity */
};

/* The executor behind the engine: the one call it needs. */
struct serve_executor {
    void *ctx;
    const int *ordinal;         /* logical device -> the GPU it runs on (--devices 0,0); NULL: its own */
    /* Fill *out for one step of `shape`; -1 with a message if it cannot be run. */
    int (*step_cost)(void *ctx, const struct serve_step_shape *shape, struct serve_step_cost *out);
};

struct serve_policy {
    int max_batch;              /* sequences in flight, all groups together */
    int groups;                 /* batches in flight at once (pipeline: microbatch groups) */
    int64_t kv_capacity_tokens; /* KV cache positions the placement holds beside its weights */
    int max_context;            /* the model's max_position_embeddings */
};

enum serve_status { SERVE_DONE, SERVE_REFUSED };

struct serve_request_result {
    struct serve_request req;
    enum serve_status status;
    char reason[160];           /* SERVE_REFUSED: why */
    double first_token_ms;      /* end of its prefill */
    double finish_ms;           /* its last token */
    double *token_ms;           /* owned: time of each output token, output_tokens of them */
};

struct serve_totals {
    int n_devices;
    double compute_ms[PB_MAX_DEVICES], comm_ms[PB_MAX_DEVICES], copy_ms[PB_MAX_DEVICES];
    double busy_ms[PB_MAX_DEVICES];
    int prefill_steps, decode_steps;
    double decode_batch_sum;    /* sum of decode batch sizes: / decode_steps = mean batch */
    double decode_context_sum;  /* sum of decode steps' context */
    int max_in_flight;
    int kv_waits;               /* boundaries where the head of the queue waited for KV room */
};

/* Serve requests req[0..n) (sorted by arrival) and fill res[0..n) (token_ms owned:
 * serve_results_free) and *tot. -1 with a message if a step could not be costed. */
int serve_engine_run(const struct serve_executor *ex, const struct serve_policy *pol,
                     const struct serve_request *req, int n, struct serve_request_result *res,
                     struct serve_totals *tot);
void serve_results_free(struct serve_request_result *res, int n);
#endif

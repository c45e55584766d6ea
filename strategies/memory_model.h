/* Device memory a placement needs at a workload: weights as placed, the KV cache,
 * activations and workspace, communication buffers. Every figure is what the
 * executors allocate (the kernel core's arena, kernels/llama_part.cu part_layouts,
 * and the executor's own buffers, harness/exec/cuda/cuda_executor.c create_parts), so a
 * point that does not fit is refused before anything runs, and a measured run
 * can put the prediction beside the allocator's figure. Plain C, no CUDA. */
#ifndef PB_MEMORY_MODEL_H
#define PB_MEMORY_MODEL_H
#include <stdint.h>
#include "strategy.h"

/* What the executors size their buffers for: once per point, for the whole batch,
 * the prompt and every generated token (not per pass or per microbatch). */
struct memory_shape {
    int batch;               /* sequences */
    int seq;                 /* prompt tokens per sequence */
    int decode_tokens;       /* greedy tokens generated after the prefill (0: prefill only) */
};

/* One logical device. weights + kv + activations + workspace + comm = peak. */
struct device_memory {
    uint64_t weights;        /* parameters resident on the device (tp: this rank's shard) */
    uint64_t kv;             /* K and V caches: batch x (seq + decode) positions of its layers */
    uint64_t activations;    /* hidden states, tokens, logits, normed, q/k/v, MLP, attention partials */
    uint64_t workspace;      /* cuBLASLt workspace; cpu offload: the staging buffer weights stream into */
    uint64_t comm;           /* tp: the all-gathered logits */
    uint64_t peak;           /* all of it: every buffer is allocated once and held for the whole point */
    uint64_t budget;         /* what it was checked against (0: not checked) */
    int layers;              /* decoder layers whose KV cache lives here (tp: all, sharded) */
    int has_head;            /* holds lm_head, so the logits [rows x vocab] */
};

struct memory_plan {
    int n_devices;           /* 0: not computed */
    struct device_memory gpu[PB_MAX_DEVICES];
    uint64_t host_weights;   /* cpu offload: pinned host memory holding the offloaded weights */
};

/* The largest workload a placement holds, everything else as in the point:
 * the longest context (prompt + generated tokens) at the point's batch, capped
 * at max_position_embeddings, and the largest batch at the point's context. */
struct kv_capacity {
    int max_context;         /* 0: not even the point's prompt fits */
    int context_capped;      /* 1: max_position_embeddings, not memory, set max_context */
    int max_batch;           /* 0: not even one sequence fits */
    uint64_t max_tokens;     /* batch x max_context: KV positions the placement can hold */
};

/* KV-cache bytes per token position of one layer on a device: K and V, this
 * rank's kv heads (kv heads replicated when there are fewer than ranks). */
uint64_t memory_kv_bytes_per_token(const struct model_spec *m, enum dtype dt, int world);

/* KV-cache bytes per position of one sequence on device d of a placement: the K and V
 * of the layers whose cache lives there (tp and hybrid: its group's, this rank's heads). */
uint64_t memory_kv_bytes_per_position(const struct model_spec *m, const struct placement *p, enum dtype dt, int d);

/* Per-device bytes of a placement at a shape. Fails (message printed) on a shape
 * or tensor-parallel split the kernel core cannot hold. */
int memory_plan_compute(const struct model_spec *m, const struct placement *p, enum dtype dt,
                        const struct memory_shape *s, struct memory_plan *out);

/* Set each device's budget from mc and refuse, naming the strategy, the GPU and
 * the byte counts, the device furthest over its budget (or offloaded
 * weights beyond the cpu budget). A budget of 0 means none was given: not checked. */
int memory_plan_check(struct memory_plan *mp, const struct machine *mc, const char *strategy,
                      const struct memory_shape *s);

/* Budget minus peak (negative when it does not fit). */
int64_t memory_free_bytes(const struct device_memory *g);

/* The device that fills first: the least free bytes (the highest peak where no
 * budget is known). -1 when the plan is empty. */
int memory_fullest_device(const struct memory_plan *mp);

/* KV capacity of a placement against the budgets in mc (each device's own). */
int memory_kv_capacity(const struct model_spec *m, const struct placement *p, enum dtype dt,
                       const struct memory_shape *s, const struct machine *mc, struct kv_capacity *out);

/* One sweep point: the plan, its check against mc (the return value, with the
 * message) and, whatever the check says, the KV capacity. Nothing is computed
 * (mp->n_devices 0) when the shape itself is invalid. */
int memory_check_point(const struct model_spec *m, const struct placement *p, enum dtype dt,
                       const struct memory_shape *s, const struct machine *mc, const char *strategy,
                       struct memory_plan *mp, struct kv_capacity *cap);
#endif

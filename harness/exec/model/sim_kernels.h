/* Per-kernel pricing of compute steps: a step is the sum of the kernels the kernel
 * core launches for it (kernels/llama_forward.cu), each priced by its own roofline
 * with the profile's efficiencies, plus one launch each. docs/COST_MODEL.md has
 * the formulas and where each parameter comes from. */
#ifndef PB_SIM_KERNELS_H
#define PB_SIM_KERNELS_H
#include "../../../models/model_spec.h"
#include "../../../strategies/strategy.h"
#include "device_profile.h"

/* The work of one call on one rank: `batch` sequences of `seq` new tokens each,
 * attending to `context` positions in all; tensor-parallel world `tp` (1: whole
 * layers). seq == 1 is a decode step (GEMV path, split-KV attention). */
struct sim_call {
    int batch, seq, context, tp;
};

/* Time of one linear layer Y[M, N] = X[M, K] W[N, K]^T (bf16) with M = rows, N, K:
 * max(2MNK / (rate x compute(M)), bytes / (bw x memory(M))) + one launch, from the
 * GEMM table for prompts and the GEMV table for decode. `accumulate` reads Y too. */
double sim_linear_ns(const struct device_profile *p, int rows, int n, int k, int accumulate, int decode);
/* A memory-bound kernel moving `bytes`: bytes / (bw x memory_efficiency) + one launch. */
double sim_memory_kernel_ns(const struct device_profile *p, double bytes);
/* The halves of a layer and the other steps, as the kernel core runs them. */
double sim_attention_half_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c);
double sim_mlp_half_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c);
double sim_embed_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c);
double sim_head_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c);

/* The call a compute step stands for: batch, seq and context from the step (a step
 * without seq is a prompt of rows / batch tokens, context = seq). */
struct sim_call sim_step_call(const struct model_spec *m, const struct step *st, int tp_world);
/* Sum of the step's kernels; 0 for steps that are not compute. */
double sim_step_kernels_ns(const struct device_profile *p, const struct model_spec *m, const struct step *st,
                           int tp_world);
#endif

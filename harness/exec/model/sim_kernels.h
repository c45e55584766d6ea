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
 * layers). seq == 1 is a decode step (GEMV path, split-KV attention). tune_rows: the
 * rows its part's short-prompt GEMM algorithms were timed at, where that is above
 * the call's rows (sim_tune_rows); 0: the call's own rows. */
struct sim_call {
    int batch, seq, context, tp;
    int tune_rows;
};

/* Time of one linear layer Y[M, N] = X[M, K] W[N, K]^T (bf16) with M = rows, N, K:
 * max(2MNK / (rate x compute(M)), bytes / (bw x memory(M))) + one launch, from the
 * GEMM table for prompts and the GEMV table for decode. `accumulate` reads Y too. */
double sim_linear_ns(const struct device_profile *p, int rows, int n, int k, int accumulate, int decode);
/* The same for a prompt GEMM on a part tuned at tune_rows (gemm_efficiency_at; 0: rows). */
double sim_prompt_linear_ns(const struct device_profile *p, int rows, int tune_rows, int n, int k, int accumulate);
/* The tune rows the kernel core's GEMMs of a call run with (kernels/gemm_class.h): for
 * a prompt of the short class (1 < seq <= GEMM_SHORT_SEQ) of `rows` rows on a part of
 * part_rows (its max_rows, the whole batch's tokens), gemm_tune_rows(part_rows) where
 * that is above rows; 0 otherwise (decode, long prompts, a call at its part's rows). */
int sim_tune_rows(int seq, int rows, int part_rows);
/* The rows the executors size a schedule's parts for (cuda_exec_layout.c: max_batch x
 * seq): the largest (batch_offset + batch) x seq of its compute steps. */
int sim_schedule_part_rows(const struct schedule *s);
/* A memory-bound kernel moving `bytes`: bytes / (bw x memory_efficiency) + one launch. */
double sim_memory_kernel_ns(const struct device_profile *p, double bytes);
/* The halves of a layer and the other steps, as the kernel core runs them. */
double sim_attention_half_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c);
double sim_mlp_half_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c);
double sim_embed_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c);
double sim_head_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c);

/* The call a compute step stands for: batch, seq and context from the step (a step
 * without seq is a prompt of rows / batch tokens, context = seq), on a part of
 * part_rows (sim_schedule_part_rows; 0: the step's own rows) for its tune rows. */
struct sim_call sim_step_call(const struct model_spec *m, const struct step *st, int tp_world, int part_rows);
/* Sum of the step's kernels; 0 for steps that are not compute. */
double sim_step_kernels_ns(const struct device_profile *p, const struct model_spec *m, const struct step *st,
                           int tp_world, int part_rows);
#endif

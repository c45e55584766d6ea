/* What the measured runs share: cuda_run.c (one process) and exec/mpi/cuda_mpi_run.c
 * (one rank per GPU), and their executors. Both must give the same prompt, the
 * same comparison with `single` and the same figures, so each lives here once.
 * Plain C, tested on the CPU. */
#ifndef PB_RUN_COMMON_H
#define PB_RUN_COMMON_H
#include <stdint.h>
#include "run.h"
#include "../exec/model/device_profile.h"

/* single's output at one workload: what every other strategy is checked against. */
struct reference {
    uint16_t *logits;   /* owned, [rows][vocab] bf16 bits */
    int rows, vocab;
    int *tokens;        /* owned, generate mode: [batch] last greedy tokens; else NULL */
    double p50_ms;
};

/* Prompt tokens: a deterministic function of the seed, the same for every
 * strategy and both executors (or their outputs part ways). */
void run_prompt_tokens(int *out, int n, int vocab, uint64_t seed);
/* The prompt an executor runs: `given` (n tokens, the caller's) where it is set, else
 * run_prompt_tokens' draw from the seed. */
void run_prompt_fill(int *out, const int *given, int n, int vocab, uint64_t seed);

/* tp's and hybrid's logits against single's: relative error bar for up to 4 layers,
 * scaled by layers / 4 beyond (run_common.c says why). */
#define RUN_TP_REL_TOLERANCE 2e-2
double run_tp_tolerance(const struct placement *p);

/* single's first run at a workload becomes the reference (taking *logits and
 * *tokens, which are set to NULL); any other run is compared with it: bit for
 * bit, or within a few bf16 steps for tp (it sums in another order). */
void run_reference_or_check(struct point_result *r, struct reference *ref, uint16_t **logits, int rows,
                            int vocab, int **tokens);
void run_reference_free(struct reference *ref);

/* Latency percentiles from the timed iterations, busy time and transfers from
 * the trace (t holds records of iterations [0, trace_iters): the profiled ones, or
 * a model's one), and the CUPTI overhead: profiled p50 over timed p50. */
void run_summarise(struct point_result *r, const struct trace *t, const struct placement *p, int trace_iters);

/* Collective bytes from the program and their bus bandwidth over the ranks' NCCL time
 * (r->metrics must be summarised): nccl-tests' formulas, algbw = bytes / time and busbw =
 * algbw x 2(n-1)/n for an all-reduce, x (n-1)/n for an all-gather. With copies_are_kernels
 * (copies run as NCCL kernels too) NCCL time is not the collectives' alone: busbw unknown. */
void run_collectives(struct point_result *r, const struct program *g, int copies_are_kernels);

/* Which weights the kernels run on, for summary.json and summary.csv's weights column. */
void run_env_weights(struct run_env *env, const struct options *o);
/* The same for people: "safetensors from DIR" or "random (seed 1234)". */
void run_weights_describe(const struct options *o, char *buf, size_t len);

/* After run_summarise: idle time by cause and busy time by step kind from the program
 * the point ran (its prompt and decode schedules) joined with the trace's `iters`
 * iterations, and MBU / MFU against prof's measured copy and GEMM rates (prof NULL:
 * unknown). Causes stay unknown when the decode template's dependencies are not the
 * prompt's (one schedule must explain every pass). Never fails the point. */
void run_attribute(struct point_result *r, const struct trace *t, const struct program *g, int iters,
                   const struct device_profile *prof);
/* The profile whose ceilings MBU / MFU use in a measured run: --gpu-profile, else the
 * shipped one for the GPU's name. NULL (with a note on stderr) when there is none. */
const struct device_profile *run_ceilings_profile(const char *gpu_profile, const char *gpu_name,
                                                  struct device_profile *storage);

/* summary.csv, summary.json and trace.json into dir. */
int run_write_reports(const char *dir, const struct run_env *env, const struct point_result *res,
                      const struct trace *const *traces, int n);
#endif

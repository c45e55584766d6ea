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

/* single's first run at a workload becomes the reference (taking *logits and
 * *tokens, which are set to NULL); any other run is compared with it: bit for
 * bit, or within a few bf16 steps for tp (it sums in another order). */
void run_reference_or_check(struct point_result *r, struct reference *ref, uint16_t **logits, int rows,
                            int vocab, int **tokens);
void run_reference_free(struct reference *ref);

/* Latency percentiles from the timed iterations, busy time and transfers from
 * the profiled ones (t holds records of iterations [0, r->profile_iters)), and
 * the CUPTI overhead: profiled p50 over timed p50. */
void run_summarise(struct point_result *r, const struct trace *t, const struct placement *p);

/* After run_summarise (or the cost model's fill): idle time by cause from the
 * schedules the point ran (pre, and dec for generate mode, else NULL) joined with
 * the trace's `iters` iterations, and MBU / MFU against prof's measured copy and
 * GEMM rates (prof NULL: unknown). Causes stay unknown when dec's dependencies are
 * not pre's (one schedule must explain every pass). Never fails the point. */
void run_attribute(struct point_result *r, const struct trace *t, const struct model_spec *m,
                   const struct schedule *pre, const struct schedule *dec, int iters,
                   const struct device_profile *prof);
/* The profile whose ceilings MBU / MFU use in a measured run: --gpu-profile, else the
 * shipped one for the GPU's name. NULL (with a note on stderr) when there is none. */
const struct device_profile *run_ceilings_profile(const char *gpu_profile, const char *gpu_name,
                                                  struct device_profile *storage);

/* summary.csv, summary.json and trace.json into dir. */
int run_write_reports(const char *dir, const struct run_env *env, const struct point_result *res,
                      const struct trace *const *traces, int n);
/* Free n results and their traces, and the three arrays. */
void run_results_free(struct point_result *res, struct trace *traces, const struct trace **tptr, int n);
#endif

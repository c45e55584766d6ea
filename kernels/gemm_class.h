/* Which cuBLASLt algorithm class a prompt's linears take, and the rows a part's
 * short-prompt algorithms are timed at. Plain C with no CUDA types, so that the
 * kernel core (gemm.h) and the cost model (harness/exec/model/sim_kernels.c) follow
 * one rule: a microbatch call of a part sized for the whole batch runs the
 * algorithms that part timed at its own tune rows, not at the call's rows. */
#ifndef PB_GEMM_CLASS_H
#define PB_GEMM_CLASS_H

/* Long prompts take the algorithm timed at M = 4096 whatever the call's M, so every
 * part picks the same algorithm. Prompts of at most GEMM_SHORT_SEQ
 * tokens are bound by weight bytes, where the best tile depends on the rows: their
 * candidates are timed at the part's own row count (gemm_init's max_rows, at most
 * GEMM_TUNE_ROWS_MAX: beyond it tuning costs more and the ranking hardly moves). */
#define GEMM_CLASS_LONG 0
#define GEMM_CLASS_SHORT 1
/* One-token steps of a part of several sequences (DECODE_LT): timed at the part's
 * max_batch rows, whatever rows a call has (gemm_set_decode_rows). */
#define GEMM_CLASS_DECODE 2
#define GEMM_SHORT_SEQ 256
#define GEMM_TUNE_ROWS_MAX 512
static inline int gemm_class_for_seq(int seq) { return seq <= GEMM_SHORT_SEQ ? GEMM_CLASS_SHORT : GEMM_CLASS_LONG; }
/* The rows a part of max_rows times its short-prompt candidates at. */
static inline int gemm_tune_rows(int max_rows) { return max_rows < GEMM_TUNE_ROWS_MAX ? max_rows : GEMM_TUNE_ROWS_MAX; }
#endif

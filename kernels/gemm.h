/* The linear layers: Y[M, N] = X[M, K] * W[N, K]^T (+ Y when accumulate), bf16 in
 * and out, fp32 accumulation. Two paths, each row-independent so that a row's
 * result never depends on how many rows share the call (microbatches must match
 * the whole batch bit for bit):
 *  - cuBLASLt for prefill, with ONE algorithm per (N, K, class) in a context,
 *    chosen when it is prepared, with split-K reductions excluded. The class comes
 *    from the prompt length alone (short prompts want small tiles), never from the
 *    call's row count, so microbatches that split the batch keep the algorithm. For
 *    the short class the candidates are timed at the context's tune_rows (a part's
 *    max_rows, capped), and the choice is shared by every context of the process
 *    with the same (N, K, tune_rows), so all parts of one run agree; where gemm_tma
 *    (below) times faster, the short class of a context whose calls hold at most
 *    128 rows takes it, a residual product's (o, down) optionally with K in slices;
 *  - for one-token steps (decode): our GEMV at one row (gemm_rows, CUDA cores;
 *    what the folded norms need), and for a part of several sequences cuBLASLt's
 *    decode class (one algorithm per (N, K), timed at the part's max_batch rows
 *    from tiles offered for up to 128 rows, which fill the SMs where the tiles
 *    offered for 16 rows do not), its residual products (o, down) optionally with K
 *    in slices whose fp32 partials the caller adds in order; where gemm_tma (TMA +
 *    wgmma, sm_90) times faster at those rows the shape takes it instead, with its
 *    own K slices into the same partials (gemm_set_tma); our mma.sync kernels
 *    (gemm_skinny, gemm_stream) stay for the benchmark to compare. Each reduces over
 *    K in a fixed order. */
#ifndef PB_GEMM_H
#define PB_GEMM_H
#include <stdint.h>
#include <cublasLt.h>
#include <cuda_bf16.h>
#include "gemm_class.h"

#define GEMM_MAX_SHAPES 32
#define GEMM_WORKSPACE_BYTES (32u << 20)
/* The workspace's last GEMM_PARTIALS_BYTES hold a residual product's K-slice
 * partials, the decode or the short class's (gemm_lt_partials); cuBLASLt gets the rest. */
#define GEMM_PARTIALS_BYTES (4u << 20)
#define GEMM_LT_WORKSPACE_BYTES (GEMM_WORKSPACE_BYTES - GEMM_PARTIALS_BYTES)
#define GEMM_CANDIDATES 16   /* heuristic results asked for; short prompts time them all */
/* Classes, GEMM_SHORT_SEQ, GEMM_TUNE_ROWS_MAX and gemm_tune_rows: gemm_class.h. */

struct gemm_shape {
    int n, k, cls;
    cublasLtMatmulAlgo_t algo;
    int skinny;                      /* decode class only: gemm_skinny timed faster than every algorithm */
    cublasLtMatrixLayout_t a, b, c;  /* b and c get the call's M before each use */
    int residual;                    /* prepared with gemm_prepare_residual: the product is added to a
                                      * residual, so the decode and short classes may split K
                                      * (gemm_lt_partials) */
    int ksplit;                      /* decode and short classes: K in ksplit slices (0: not split) */
    cublasLtMatmulAlgo_t kalgo;      /* decode class: the slices' strided-batch algorithm, fp32 partials */
    cublasLtMatrixLayout_t ka, kb, kc;  /* its layouts (kb and kc get the call's M) */
    int tma, tma_bn;                 /* decode and short classes: gemm_tma serves it, in units of tma_bn
                                      * weight rows (its slices, if any, in ksplit: gemm_lt_partials runs
                                      * them) */
};

struct gemm_ctx {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    void *workspace;                 /* GEMM_WORKSPACE_BYTES of device memory */
    int tune_rows;                   /* M the short class is timed at: min(max_rows, GEMM_TUNE_ROWS_MAX) */
    int long_prompts;                /* max_rows > GEMM_SHORT_SEQ: a call may be long, so its class is timed */
    int decode_rows;                 /* M the decode class is timed at (gemm_set_decode_rows); 0: no decode class */
    int n_shapes;
    struct gemm_shape shapes[GEMM_MAX_SHAPES];
};

/* Handle and descriptors; workspace is device memory the caller owns; max_rows the
 * most rows a call will have (a part's max_rows), which sets tune_rows. */
int gemm_init(struct gemm_ctx *g, void *workspace, int max_rows);
/* Also prepare the decode class (GEMM_CLASS_DECODE) in every later gemm_prepare,
 * its candidates timed at `rows` (a part's max_batch): one-token steps of a few dozen
 * rows through cuBLASLt. Its candidates are the heuristic's for rows, 64 and 128
 * rows (at 16 rows the heuristic's own ones for N = 4096 stream 8-40% of the copy
 * rate, tiles it offers for 64 rows about 80%: H200, docs/PERF.md), split-K
 * excluded as always, so one algorithm serves a call of any row count and a row's
 * bits never depend on the rows sharing the call; last gemm_skinny, which the
 * shape then takes (gemm_lt calls it) if it is faster than the kept algorithm by
 * the tuning margin. */
int gemm_set_decode_rows(struct gemm_ctx *g, int rows);
/* A product added to a residual (o, down): as gemm_prepare, and its decode class may
 * also take K in 2 or 4 slices as one strided-batch call of fp32
 * partials, which the caller adds to the residual in slice order
 * (k_add_partials, k_add_rmsnorm); the short class may take slices on gemm_tma
 * alone (gemm_set_tma, gemm_set_short_kslices), never cuBLASLt's. At 16 rows of
 * Llama-2-7B's N = 4096 cuBLASLt's best tile gives 64 blocks for 132 SMs (H200);
 * slices of K multiply the blocks without its split-K reduction kernel, which
 * measured slower (docs/PERF.md). The slices are timed against the kept
 * algorithm at decode_rows and taken when faster by the tuning margin; the adds
 * are not timed, as the caller folds them into the norm that follows. A slice's
 * sum runs in the algorithm's order over its K and the slices are added in order,
 * so a row's bits depend on the shape alone. */
int gemm_prepare_residual(struct gemm_ctx *g, int n, int k);
/* Whether residual shapes prepared from now on time K slices at all (default 1),
 * for the whole process: the benchmark compares. */
void gemm_set_kslices(int on);
/* Whether the short class of residual shapes prepared from now on may take
 * gemm_tma's K slices (default 0), for the whole process: the path is built and
 * its GPU tests written, but they have not run on a GPU yet. */
void gemm_set_short_kslices(int on);
/* The K slices of (N, K) in class cls: 0 when not split (or not prepared; the long
 * class never is). Where they are, the caller runs every call of the class through
 * gemm_lt_partials (gemm_lt's whole product has other bits), so a row's bits never
 * depend on the call. */
int gemm_ksplit(struct gemm_ctx *g, int n, int k, int cls);
/* Force the slices of a prepared residual shape's decode class (ks 2 or 4, or 0 for
 * none), with the heuristic's first algorithm: for tests. */
int gemm_force_ksplit(struct gemm_ctx *g, int n, int k, int ks);
/* The partials of the last gemm_lt_partials: [ks][prow][n] floats at the end of the
 * workspace, prow = gemm_partials_rows of its class; slice i of row r at
 * part[(i * prow + r) * n]. */
float *gemm_partials(const struct gemm_ctx *g);
/* The rows a slice of class cls's partials holds, the rows the class is timed at:
 * decode_rows for the decode class, tune_rows for the short class (0 for the long). */
int gemm_partials_rows(const struct gemm_ctx *g, int cls);
/* Y's K slices into gemm_partials (class cls, m <= gemm_partials_rows rows; the
 * shape must have gemm_ksplit > 0 in that class). */
int gemm_lt_partials(struct gemm_ctx *g, const __nv_bfloat16 *x, const __nv_bfloat16 *w, int m, int n, int k, int cls,
                     cudaStream_t s, int pdl = 0);
/* Whether the decode class (decode_rows <= 128) and the short class of a context
 * whose calls hold at most 128 rows also time gemm_tma (sm_90 only), for the whole
 * process and the shapes prepared from then on: OFF never, TIMED against the kept
 * algorithm (the decode class's K slices included), taken when faster by the
 * tuning margin, FORCE always (the fastest unit and slices; untimed shapes too:
 * tests). A residual shape's gemm_tma may take K in 2 or 4 slices in either class
 * (the short class once gemm_set_short_kslices allows it) where its partials fit (ks * rows * N floats in GEMM_PARTIALS_BYTES, rows those
 * of gemm_partials_rows: 2 slices of Llama-2-7B's o and down at 128 rows). A shape
 * gemm_tma serves runs it in gemm_lt, its slices in gemm_lt_partials, and
 * gemm_tma_swiglu for a gate-up shape (gemm_tma_serves). */
#define GEMM_TMA_OFF 0
#define GEMM_TMA_TIMED 1
#define GEMM_TMA_FORCE 2
void gemm_set_tma(int mode);
int gemm_tma_mode(void);
int gemm_tma_serves(struct gemm_ctx *g, int n, int k, int cls);
/* Whether the decode class of (N, K) is timed: weights of at least 8 MiB, which
 * take long enough to stream that the timing ranks tiles, not launches. */
int gemm_decode_is_timed(int n, int k);
/* Choose and remember the algorithms (every class) for one (N, K); once per shape at
 * setup. The first time a process prepares an (N, K) at a tune_rows this times the
 * short-prompt candidates on temporary device buffers (freed before it returns). */
int gemm_prepare(struct gemm_ctx *g, int n, int k);
void gemm_destroy(struct gemm_ctx *g);
/* Whether gemm_prepare times a prompt class's candidates of (N, K) at tune_rows
 * (the short class's rows, or the long class's 4096): only products of at least
 * 2^30 multiply-adds (smaller ones are launch-bound and take the heuristic's first
 * choice). */
int gemm_short_is_timed(int n, int k, int tune_rows);

/* cuBLASLt path; the (N, K) must have been prepared; cls from gemm_class_for_seq.
 * pdl reaches gemm_skinny only, where the decode class took it: cuBLASLt's kernels
 * take no launch attribute, and on a programmatic graph edge they read their input
 * before the kernel ahead has written it (measured on an H100: docs/PERF.md). */
int gemm_lt(struct gemm_ctx *g, const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y,
            int m, int n, int k, int accumulate, int cls, cudaStream_t s, int pdl = 0);
/* GEMV path for few rows (K a multiple of 8, pointers 16-byte aligned); pdl:
 * programmatic launch, its weights streaming while the previous kernel ends (pdl.h). */
int gemm_rows(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k,
              int accumulate, cudaStream_t s, int pdl = 0);
/* The same with a fixed number of output columns per warp (1 or 2; gemm_rows takes
 * gemm_rows_cols_per_warp(n), now 1): the same bits, for the benchmark to compare. */
int gemm_rows_cols_per_warp(int n);
int gemm_rows_cols(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k,
                   int accumulate, int cols_per_warp, cudaStream_t s, int pdl = 0);
/* How the GEMV spreads its work, for the whole process (benchmarks compare the
 * settings): cols output columns a warp (1 or 2: the same bits), or, at one
 * column a warp, each column's K split over ks_long (K > 8192), ks_narrow
 * (N <= 8192) or ks_wide warps of a block (1, 2, 4 or 8), their sums added in a
 * fixed order; u, the 16-byte vectors a lane loads at a time for one weight row
 * (8, 4 or 2; half of it for two rows, or four rows of x). The split changes the
 * bits; it comes from (N, K) alone, so a row's bits still never depend on the
 * rows sharing the call. */
struct gemv_wave_cfg {
    int cols, ks_narrow, ks_wide, ks_long, u;
};
void gemv_wave_set(struct gemv_wave_cfg c);
struct gemv_wave_cfg gemv_wave_get(void);
int gemm_rows_ksplit(int n, int k);
/* Y = rmsnorm(X) W^T with the norm folded into the GEMV (x the raw hidden rows,
 * norm_w its weight, K the hidden size): bit for bit k_rmsnorm then gemm_rows, one
 * launch fewer. Only where gemm_rows_norm_fits(m, k) (at most 4 rows: each block
 * recomputes its rows' norms); callers fall back to the two kernels otherwise. */
int gemm_rows_norm_fits(int m, int k);
int gemm_rows_norm(const __nv_bfloat16 *x, const __nv_bfloat16 *norm_w, float eps, const __nv_bfloat16 *w,
                   __nv_bfloat16 *y, int m, int n, int k, cudaStream_t s, int pdl = 0);
/* gemm_rows onto y (accumulate: the residual), then normed = rmsnorm(y) * norm_w
 * over its m rows, done by the grid's last block to finish: bit for bit gemm_rows
 * then k_rmsnorm, one launch fewer, and the norm starts as the GEMV's last block
 * ends instead of after the whole grid has drained. ticket: an int that is zero
 * and that no launch running at the same time uses; it is left zero. Only where
 * gemm_rows_then_norm_fits(m, n): at most 4 rows (one block normalises them all),
 * N a multiple of 8 up to 8192, one column a warp (gemm_rows_cols_per_warp).
 * The batch-1 step measured slower with it than with launched norms (H200,
 * docs/PERF.md): the part's tail_norm is off. */
int gemm_rows_then_norm_fits(int m, int n);
int gemm_rows_then_norm(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k,
                        int accumulate, const __nv_bfloat16 *norm_w, float eps, __nv_bfloat16 *normed, int *ticket,
                        cudaStream_t s, int pdl = 0);
/* Tensor-core path for one-token steps (gemm_skinny.cu): the weights streamed once
 * for all rows (up to 64 rows a block, more rows take more blocks), mma.sync bf16
 * with fp32 sums. A row's bits depend on K alone, never on the row count, but
 * they are not gemm_rows' bits: a decode step uses one path for all its linears.
 * K a multiple of 8, pointers 16-byte aligned. */
int gemm_skinny(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k,
                int accumulate, cudaStream_t s, int pdl = 0);
/* The same with a fixed number of 16-column tiles a block (1 or 2; gemm_skinny
 * takes gemm_skinny_col_tiles(m)): the same bits, for the benchmark to compare. */
int gemm_skinny_col_tiles(int m);
int gemm_skinny_mt(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k,
                   int accumulate, int mt, cudaStream_t s, int pdl = 0);
/* How gemm_skinny (and gemm_skinny_swiglu) streams its weights, for the whole
 * process (benchmarks compare the settings; the bits are the same for all):
 *  - DECODE_STREAM_REGISTERS (the default): each lane's loads through registers;
 *  - DECODE_STREAM_ASYNC: each lane's 16-byte vectors copied by cp.async into its
 *    own slots of a ring of `stages` groups of `vecs` chunks (1, 2 or 4) in shared
 *    memory. On an H200 it was the fastest version of qkv and gate-up alone at 16
 *    rows (s3 v1 mt2, s4 v1 mt2) and slower everywhere else, and every whole step
 *    measured with it was slower (docs/PERF.md), so it is not the default.
 * mt: column tiles a block for gemm_skinny (0: gemm_skinny_col_tiles). */
#define DECODE_STREAM_REGISTERS 0
#define DECODE_STREAM_ASYNC 2
struct skinny_stream_cfg {
    int mode, stages, vecs, mt;
};
void gemm_skinny_set_stream(struct skinny_stream_cfg c);
struct skinny_stream_cfg gemm_skinny_stream(void);
/* Tensor-core path streamed through shared memory (gemm_stream.cu): 128 (or 64,
 * gemm_stream_set_warps) weight rows a block, all its rows of X (up to 64 a block,
 * or 128 with row_tile 128), K split over a thread-block cluster of
 * gemm_stream_splits(n, k, swiglu) blocks and summed in rank order. A row's bits
 * depend on (N, K) alone, never on the row count; they are neither gemm_rows' nor
 * gemm_skinny's. K a multiple of 8, pointers 16-byte aligned. */
int gemm_stream_splits(int n, int k, int swiglu);
/* Warps a block of gemm_stream for the whole process: 8, or 4 (blocks of 64
 * weight rows, half the shared memory, twice the blocks), or 0 (the default): 4
 * for row tiles of 64 rows or more, else 8. The same bits either way (the splits
 * come from gemm_stream_splits). The benchmark compares them. */
void gemm_stream_set_warps(int warps);
int gemm_stream_warps(void);
int gemm_stream(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k,
                int accumulate, cudaStream_t s, int pdl = 0);
/* act = silu(x W_gate^T) * (x W_up^T) (w_gate_up = [gate; up]): bit for bit
 * gemm_stream into [m, 2 inter] (the same splits), then k_swiglu. */
int gemm_stream_swiglu(const __nv_bfloat16 *x, const __nv_bfloat16 *w_gate_up, __nv_bfloat16 *act, int m, int inter,
                       int k, cudaStream_t s, int pdl = 0);
/* Every knob, for tests and benchmarks: swiglu (y is then [m, n] of act and w
 * [2n, K]), splits (1 to 8; they change the bits), row_tile (0: by m; 8 to 128:
 * rows of X a block, the same bits) and prefetch_tiles (K tiles of each block's
 * weights prefetched into L2 before pdl_wait, past the three it loads). */
int gemm_stream_cfg(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k,
                    int accumulate, int swiglu, int splits, int row_tile, int prefetch_tiles, cudaStream_t s,
                    int pdl = 0);
/* Hopper path for one-token steps (gemm_tma.cu, sm_90a only): the weights streamed
 * by TMA through a ring of shared-memory stages, wgmma from shared memory, up to
 * 128 rows; persistent blocks over units of bn (64 or 128) weight rows times one of
 * ks slices of K. ks = 1 writes Y (accumulate: onto Y); ks > 1 writes each slice's
 * fp32 sums to part[slice][prow][N] (gemm_partials' layout) for k_add_partials or
 * k_add_rmsnorm. row_tile: wgmma's N, 8 to 128 (0: the least that holds m); a row's
 * bits depend on K and ks alone. K a multiple of 8, pointers 16-byte aligned. */
#define GEMM_TMA_BK 64  /* K a stage of gemm_tma: ks may be at most its K tiles, ceil(K / 64) */
int gemm_tma_cfg(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, float *part, int prow, int m,
                 int n, int k, int accumulate, int ks, int bn, int row_tile, cudaStream_t s, int pdl = 0);
/* The shared memory a block's ring of stages takes, for the whole process (16 KiB
 * to 200 KiB, the default; at least two stages). The bits do not change; rings of
 * 96 and 64 KiB made the batched steps slower on an H100 (docs/PERF.md). */
int gemm_tma_set_ring(int bytes);
int gemm_tma_ring(void);
/* gemm_tma's consumers, for the whole process: warpgroups (1, the default, or 2;
 * row tiles of 8 keep one) each multiply their share of X's rows by every weight
 * row of a stage, and inflight 1 (default 0) lets a warpgroup issue a stage's
 * wgmma before the last stage's complete. The bits do not change. The defaults are
 * the kernel every GPU run so far measured, until one measures the others. */
int gemm_tma_set_consumers(int warpgroups, int inflight);
void gemm_tma_consumers(int *warpgroups, int *inflight);
/* act[m, inter] = silu(x W_gate^T) * (x W_up^T) for w_gate_up = [gate; up], a unit
 * taking 64 gate rows and their 64 up rows: bit for bit gemm_tma_cfg (ks 1) into
 * [m, 2 inter] then k_swiglu, in one launch. */
int gemm_tma_swiglu(const __nv_bfloat16 *x, const __nv_bfloat16 *w_gate_up, __nv_bfloat16 *act, int m, int inter,
                    int k, int row_tile, cudaStream_t s, int pdl = 0);
/* act = silu(x W_gate^T) * (x W_up^T), bit for bit gemm_skinny into [m, 2 inter]
 * then k_swiglu, in one launch (w_gate_up = [gate; up]). */
int gemm_skinny_swiglu(const __nv_bfloat16 *x, const __nv_bfloat16 *w_gate_up, __nv_bfloat16 *act, int m, int inter,
                       int k, cudaStream_t s, int pdl = 0);
/* act[m, inter] = silu(x W_gate^T) * (x W_up^T) for w_gate_up = [gate; up] ([2 inter, K]),
 * bit for bit gemm_rows into [m, 2 inter] then k_swiglu, in one launch. */
int gemm_rows_swiglu(const __nv_bfloat16 *x, const __nv_bfloat16 *w_gate_up, __nv_bfloat16 *act, int m, int inter,
                     int k, cudaStream_t s, int pdl = 0);
/* gemm_rows_swiglu of rmsnorm(x), the norm folded in as gemm_rows_norm does. */
int gemm_rows_swiglu_norm(const __nv_bfloat16 *x, const __nv_bfloat16 *norm_w, float eps,
                          const __nv_bfloat16 *w_gate_up, __nv_bfloat16 *act, int m, int inter, int k, cudaStream_t s,
                          int pdl = 0);
#endif

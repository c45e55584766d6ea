/* Our GEMV for one-token steps (gemm_rows and its variants: pairs of columns,
 * SwiGLU, the folded norm); see gemm.h. cuBLASLt's path is gemm_lt.cu. */
#include "gemm.h"
#include "cuda_check.h"
#include "pdl.h"
#include "load_stream.cuh"
#include "row_norm.cuh"
#include "last_block.cuh"

typedef __nv_bfloat16 bf16;

/* ---- GEMV: one column (or two) a warp, or a column's K over several warps; up to GEMV_ROWS rows a block ---- */

#define GEMV_ROWS 8
#define GEMV_WARPS 8

enum gemv_mode { GEMV_PLAIN, GEMV_PAIR, GEMV_SWIGLU };
/* Where a norm rides: none, folded in before (x is the raw hidden state), or after,
 * in the grid's last block, over the rows the GEMV has just written (gemm_rows_then_norm). */
enum gemv_norm { GEMV_NORM_NONE, GEMV_NORM_BEFORE, GEMV_NORM_AFTER };

/* The norm's operands: BEFORE uses w and eps, AFTER all of them. */
struct gemv_norm_args {
    const bf16 *w;
    float eps;
    bf16 *y;      /* AFTER: normed rows, [m, n] */
    int *ticket;  /* AFTER: zero before the call, left zero (last_block.cuh) */
};

/* A warp's sums of its P weight rows over ROWS rows, each lane holding its share:
 * the fixed shuffle tree, every lane ends with the total. */
template <int P, int ROWS>
__device__ __forceinline__ void gemv_warp_sum(float acc[P][ROWS])
{
#pragma unroll
    for (int q = 0; q < P; q++)
#pragma unroll
        for (int r = 0; r < ROWS; r++)
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) acc[q][r] += __shfl_xor_sync(0xffffffffu, acc[q][r], off);
}

/* One thread stores C output columns from col over ROWS rows from m0. GEMV_SWIGLU
 * rounds as k_swiglu does on the bf16 values a plain GEMV would have stored;
 * accumulate adds y's old value (the residual) before the one rounding. */
template <int P, int C, int ROWS, int MODE>
__device__ __forceinline__ void gemv_store(const float acc[P][ROWS], bf16 *__restrict__ y, int m0, int m,
                                           int n, int col, int accumulate)
{
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        if (m0 + r >= m) break;
        bf16 *out = y + (size_t)(m0 + r) * n + col;
        if (MODE == GEMV_SWIGLU) {
            float g = __bfloat162float(__float2bfloat16(acc[0][r]));
            float u = __bfloat162float(__float2bfloat16(acc[P - 1][r]));
            float silu = __bfloat162float(__float2bfloat16(g / (1.0f + expf(-g))));
            *out = __float2bfloat16(silu * u);
        } else {
#pragma unroll
            for (int q = 0; q < C; q++) {
                if (col + q >= n) break;
                float v = acc[q][r];
                if (accumulate) v += __bfloat162float(out[q]);
                out[q] = __float2bfloat16(v);
            }
        }
    }
}

/* The folded norm is for the few rows of a decode step: each block computes its
 * rows' norms itself. */
#define GEMV_NORM_ROWS 4
/* The trailing norm runs in one block, row after row: for the few rows of a decode step. */
#define GEMV_TAIL_ROWS 4

/* ROWS rows per block, U weight vectors in flight per lane and weight row, each
 * column's K in KS contiguous parts, a warp each (gemm_rows_ksplit). A part's sum
 * runs over its k in the same order whatever ROWS, U and the mode are
 * (lane-strided vectors in ascending order, then a fixed shuffle tree) and the
 * parts are added in part order, so the bits depend on (N, K) through KS alone:
 * neither on the row count nor on how columns are spread over warps.
 * The first U vectors of each weight row are loaded before pdl_wait: no kernel
 * writes weights, so under programmatic launch that stream starts while the
 * previous kernel (a norm, rope, attention) is still finishing.
 * GEMV_PAIR: a warp takes two adjacent columns, twice the bytes a warp and half
 * the blocks (gemm_rows_cols_per_warp says which gemm_rows takes).
 * GEMV_SWIGLU: w is [gate; up] (2n rows) and a warp takes gate row col and up row
 * n + col together, so its epilogue writes silu(gate) * up straight into y[m, n]:
 * each sum is the plain GEMV's and the epilogue rounds as k_swiglu does, so the
 * bits equal gemm_rows + k_swiglu, one launch and one activation pass fewer.
 * NORM: x is the raw hidden state. Each block computes 1/rms of its rows as
 * k_rmsnorm does (row_inv_rms over the same 256 threads, so the same sums in the
 * same order), while its first weights are already streaming, and each warp
 * normalises each x vector as it reads it, rounding as k_rmsnorm does: the GEMV
 * sees the values k_rmsnorm would have written, without that launch. The row and
 * the norm weight stay in L1 (8 KB each at hidden 4096). */
/* The U vectors base, base + 32, ... of each of a warp's P weight rows (those
 * before K). */
template <int P, int U>
__device__ __forceinline__ void gemv_load_group(uint4 wv[P][U], const uint4 *const wr[P], int base, int kv)
{
#pragma unroll
    for (int q = 0; q < P; q++)
#pragma unroll
        for (int u = 0; u < U; u++)
            if (base + u * 32 < kv) wv[q][u] = load_stream(wr[q] + base + u * 32);
}

template <int ROWS, int U, int MODE, int NORMS, int KS>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y, int m, int n, int k,
            int accumulate, struct gemv_norm_args na)
{
    constexpr bool NORM = NORMS == GEMV_NORM_BEFORE, TAIL = NORMS == GEMV_NORM_AFTER;
    static_assert(!TAIL || MODE == GEMV_PLAIN, "the trailing norm reads plain output rows");
    constexpr int P = MODE == GEMV_PLAIN ? 1 : 2;  /* weight rows per warp */
    constexpr int C = MODE == GEMV_PAIR ? 2 : 1;   /* output columns per warp */
    static_assert(KS == 1 || C == 1, "a column pair is not split over warps");
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int part = warp % KS;  /* this warp's part of K */
    int col = (blockIdx.x * (GEMV_WARPS / KS) + warp / KS) * C;
    int m0 = blockIdx.y * ROWS;
    int kv = k / 8;
    /* part p takes the vectors [p span, (p + 1) span) of K, span a multiple of 32 */
    int span = KS == 1 ? kv : (kv + 32 * KS - 1) / (32 * KS) * 32;
    int k_lo = part * span, k_hi = min(kv, k_lo + span);
    const uint4 *wr[P];
#pragma unroll
    for (int q = 0; q < P; q++) {
        int row = MODE == GEMV_SWIGLU ? q * n + min(col, n - 1) : min(col + q, n - 1);
        wr[q] = (const uint4 *)(w + (size_t)row * k);
    }
    uint4 wv[P][U];
    gemv_load_group<P, U>(wv, wr, k_lo + lane, k_hi);
    pdl_wait();
    pdl_trigger();
    const uint4 *xr[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) xr[r] = (const uint4 *)(x + (size_t)min(m0 + r, m - 1) * k);
    const uint4 *nw = (const uint4 *)na.w;
    float inv[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) inv[r] = 1.0f;
    if (NORM) {  /* the whole block, before any warp leaves */
        static_assert(GEMV_WARPS * 32 == NORM_THREADS, "k_rmsnorm's partition of the row");
        __shared__ float red[32];
#pragma unroll
        for (int r = 0; r < ROWS; r++) inv[r] = row_inv_rms(xr[r], k, na.eps, red);
    }
    /* with a trailing norm every warp goes on to the block's ticket; one past N
     * reads a clamped weight row and stores nothing */
    if (!TAIL && KS == 1 && col >= n) return;
    float acc[P][ROWS];
#pragma unroll
    for (int q = 0; q < P; q++)
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc[q][r] = 0.0f;
    for (int base = k_lo + lane; base < k_hi; base += 32 * U) {
        if (base != k_lo + lane) gemv_load_group<P, U>(wv, wr, base, k_hi);
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (base + u * 32 >= k_hi) break;
            float wf[P][8];
#pragma unroll
            for (int q = 0; q < P; q++) norm_unpack8(wv[q][u], wf[q]);
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                float xf[8];
                uint4 xv = __ldg(xr[r] + base + u * 32);
                if (NORM) xv = norm_apply8(xv, __ldg(nw + base + u * 32), inv[r]);
                norm_unpack8(xv, xf);
#pragma unroll
                for (int q = 0; q < P; q++)
#pragma unroll
                    for (int j = 0; j < 8; j++) acc[q][r] = fmaf(wf[q][j], xf[j], acc[q][r]);
            }
        }
    }
    gemv_warp_sum<P, ROWS>(acc);
    if (KS > 1) {  /* the parts' sums added in part order by the column's first warp */
        __shared__ float parts[GEMV_WARPS][P][ROWS];
        if (lane == 0)
#pragma unroll
            for (int q = 0; q < P; q++)
#pragma unroll
                for (int r = 0; r < ROWS; r++) parts[warp][q][r] = acc[q][r];
        __syncthreads();
        if (!TAIL && (part != 0 || col >= n)) return;
#pragma unroll
        for (int j = 1; j < KS; j++)
#pragma unroll
            for (int q = 0; q < P; q++)
#pragma unroll
                for (int r = 0; r < ROWS; r++) acc[q][r] += parts[warp + j][q][r];
    }
    if (lane == 0 && part == 0 && col < n) gemv_store<P, C, ROWS, MODE>(acc, y, m0, m, n, col, accumulate);
    if (TAIL) {  /* the last block normalises the m rows every block has written */
        __shared__ int is_last;
        __shared__ float red[32];
        if (!take_last_ticket(na.ticket, 1, gridDim.x * gridDim.y, &is_last)) return;
        for (int r = 0; r < m; r++)
            norm_row_through_l2((const uint4 *)(y + (size_t)r * n), (const uint4 *)na.w, (uint4 *)(na.y + (size_t)r * n),
                                n, na.eps, red);
    }
}

template <int ROWS, int U, int MODE, int NORMS, int KS>
static int gemv_launch_ks(int blocks_y, const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate,
                          struct gemv_norm_args na, cudaStream_t s, int pdl)
{
    constexpr int C = MODE == GEMV_PAIR ? 2 : 1;
    constexpr int cols = GEMV_WARPS / KS * C;  /* output columns a block */
    dim3 grid((n + cols - 1) / cols, blocks_y);
    cudaCheck(pdl_launch(gemv_kernel<ROWS, U, MODE, NORMS, KS>, grid, dim3(GEMV_WARPS * 32), 0, s, pdl, x, w, y, m, n,
                         k, accumulate, na));
    return PB_OK;
}

/* K over 2 warps at N = 4096 (o), 4 elsewhere (qkv, gate-up, down, lm_head), 2
 * vectors a lane: the GEMV chain of a batch-1 step streamed at 96% of the copy
 * rate against 87% unsplit with 8 vectors, the step 3.60 against 3.95 ms (H200,
 * docs/PERF.md). More warps a column, or fewer for the wide products, were slower:
 * what the blocks gain is being small, many and short-lived, so that the SMs
 * take new ones while others wait on memory. */
static struct gemv_wave_cfg wave_cfg = {1, 2, 4, 4, 2};
void gemv_wave_set(struct gemv_wave_cfg c) { wave_cfg = c; }
struct gemv_wave_cfg gemv_wave_get(void) { return wave_cfg; }

/* The warps a column's K is split over: from (N, K) and the process setting only,
 * so a row's bits never depend on the rows sharing the call. */
int gemm_rows_ksplit(int n, int k)
{
    return k > 8192 ? wave_cfg.ks_long : n <= 8192 ? wave_cfg.ks_narrow : wave_cfg.ks_wide;
}

template <int ROWS, int U, int MODE, int NORMS>
static int gemv_launch(int blocks_y, const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate,
                       struct gemv_norm_args na, cudaStream_t s, int pdl)
{
    /* a pair is never split (ks 1 below); the split instances need not exist for it */
    constexpr int SPLIT_MODE = MODE == GEMV_PAIR ? GEMV_PLAIN : MODE;
    int ks = MODE == GEMV_PAIR ? 1 : gemm_rows_ksplit(n, k);
    switch (ks) {
    case 1: return gemv_launch_ks<ROWS, U, MODE, NORMS, 1>(blocks_y, x, w, y, m, n, k, accumulate, na, s, pdl);
    case 2:
        return gemv_launch_ks<ROWS, U, SPLIT_MODE, NORMS, 2>(blocks_y, x, w, y, m, n, k, accumulate, na, s, pdl);
    case 4:
        return gemv_launch_ks<ROWS, U, SPLIT_MODE, NORMS, 4>(blocks_y, x, w, y, m, n, k, accumulate, na, s, pdl);
    case 8:
        return gemv_launch_ks<ROWS, U, SPLIT_MODE, NORMS, 8>(blocks_y, x, w, y, m, n, k, accumulate, na, s, pdl);
    default: return pb_fail("gemm_rows: K split over %d warps (1, 2, 4 or 8)", ks);
    }
}

/* Rows per block for m rows: fewer rows mean less arithmetic per weight byte, so
 * the narrow variants keep more loads in flight instead. */
static int gemv_block_rows(int m) { return m == 1 ? 1 : m == 2 ? 2 : m <= 4 ? 4 : GEMV_ROWS; }

int gemm_rows_norm_fits(int m, int k) { return m <= GEMV_NORM_ROWS && k % 8 == 0; }

/* U, the vectors a lane loads at a time (8 for one weight row; DIV halves it):
 * fewer rows of x leave registers for more bytes in flight. The bits do not
 * depend on it. */
template <int MODE, int NORMS, int DIV>
static int gemv_rows_u(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate,
                       struct gemv_norm_args na, cudaStream_t s, int pdl)
{
    constexpr int U = (MODE == GEMV_PLAIN ? 8 : 4) / DIV;  /* two weight rows per warp: as many bytes in flight */
    constexpr int UH = U > 1 ? U / 2 : 1;                    /* four or eight rows of x */
    switch (gemv_block_rows(m)) {
    case 1: return gemv_launch<1, U, MODE, NORMS>(1, x, w, y, m, n, k, accumulate, na, s, pdl);
    case 2: return gemv_launch<2, U, MODE, NORMS>(1, x, w, y, m, n, k, accumulate, na, s, pdl);
    case 4: return gemv_launch<4, UH, MODE, NORMS>(1, x, w, y, m, n, k, accumulate, na, s, pdl);
    default:  /* a norm of either kind takes at most 4 rows: its entry point refused more */
        return gemv_launch<GEMV_ROWS, UH, MODE, GEMV_NORM_NONE>((m + GEMV_ROWS - 1) / GEMV_ROWS, x, w, y, m, n, k,
                                                                accumulate, na, s, pdl);
    }
}

template <int MODE, int NORMS>
static int gemv_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate,
                     struct gemv_norm_args na, cudaStream_t s, int pdl)
{
    if (k % 8) return pb_fail("gemm_rows: K=%d is not a multiple of 8", k);
    if (m <= 0) return PB_OK;
    if (NORMS == GEMV_NORM_BEFORE && !gemm_rows_norm_fits(m, k))
        return pb_fail("gemm_rows: a folded norm takes at most %d rows (%d given)", GEMV_NORM_ROWS, m);
    if (wave_cfg.u == 4) return gemv_rows_u<MODE, NORMS, 2>(x, w, y, m, n, k, accumulate, na, s, pdl);
    if (wave_cfg.u == 2) return gemv_rows_u<MODE, NORMS, 4>(x, w, y, m, n, k, accumulate, na, s, pdl);
    if (wave_cfg.u != 8) return pb_fail("gemm_rows: %d vectors a lane (2, 4 or 8)", wave_cfg.u);
    return gemv_rows_u<MODE, NORMS, 1>(x, w, y, m, n, k, accumulate, na, s, pdl);
}

/* One column a warp (wave_cfg.cols): on an H200 the batch-1 step was faster with
 * one than two even unsplit (4.03 against 4.12 ms), and a pair cannot be split
 * over warps. The bits are the same either way when K is not split. */
int gemm_rows_cols_per_warp(int n)
{
    (void)n;
    return wave_cfg.cols;
}
static int gemv_pair_for(int n) { return gemm_rows_cols_per_warp(n) == 2; }

int gemm_rows_cols(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int cols_per_warp,
                   cudaStream_t s, int pdl)
{
    const struct gemv_norm_args none = {};
    if (cols_per_warp == 2) return gemv_rows<GEMV_PAIR, GEMV_NORM_NONE>(x, w, y, m, n, k, accumulate, none, s, pdl);
    return gemv_rows<GEMV_PLAIN, GEMV_NORM_NONE>(x, w, y, m, n, k, accumulate, none, s, pdl);
}

int gemm_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s, int pdl)
{
    return gemm_rows_cols(x, w, y, m, n, k, accumulate, gemv_pair_for(n) ? 2 : 1, s, pdl);
}

int gemm_rows_norm(const bf16 *x, const bf16 *norm_w, float eps, const bf16 *w, bf16 *y, int m, int n, int k,
                   cudaStream_t s, int pdl)
{
    const struct gemv_norm_args na = {norm_w, eps, NULL, NULL};
    if (gemv_pair_for(n)) return gemv_rows<GEMV_PAIR, GEMV_NORM_BEFORE>(x, w, y, m, n, k, 0, na, s, pdl);
    return gemv_rows<GEMV_PLAIN, GEMV_NORM_BEFORE>(x, w, y, m, n, k, 0, na, s, pdl);
}

int gemm_rows_swiglu(const bf16 *x, const bf16 *w_gate_up, bf16 *act, int m, int inter, int k, cudaStream_t s,
                     int pdl)
{
    const struct gemv_norm_args none = {};
    return gemv_rows<GEMV_SWIGLU, GEMV_NORM_NONE>(x, w_gate_up, act, m, inter, k, 0, none, s, pdl);
}

int gemm_rows_swiglu_norm(const bf16 *x, const bf16 *norm_w, float eps, const bf16 *w_gate_up, bf16 *act, int m,
                          int inter, int k, cudaStream_t s, int pdl)
{
    const struct gemv_norm_args na = {norm_w, eps, NULL, NULL};
    return gemv_rows<GEMV_SWIGLU, GEMV_NORM_BEFORE>(x, w_gate_up, act, m, inter, k, 0, na, s, pdl);
}

int gemm_rows_then_norm_fits(int m, int n)
{
    return m >= 1 && m <= GEMV_TAIL_ROWS && n % 8 == 0 && n <= 8192 && !gemv_pair_for(n);
}

int gemm_rows_then_norm(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate,
                        const bf16 *norm_w, float eps, bf16 *normed, int *ticket, cudaStream_t s, int pdl)
{
    if (!gemm_rows_then_norm_fits(m, n))
        return pb_fail("gemm_rows_then_norm: %d rows of %d values (at most %d rows, N a multiple of 8 up to 8192, one "
                       "column a warp)", m, n, GEMV_TAIL_ROWS);
    if (!norm_w || !normed || !ticket) return pb_fail("gemm_rows_then_norm: the norm weight, output and ticket are needed");
    const struct gemv_norm_args na = {norm_w, eps, normed, ticket};
    return gemv_rows<GEMV_PLAIN, GEMV_NORM_AFTER>(x, w, y, m, n, k, accumulate, na, s, pdl);
}

/* The one-token GEMV with a few resident blocks that loop over columns (gemm.h,
 * gemv_persist_set): what the wave-of-blocks GEMV in gemm.cu computes, bit for
 * bit, with its weight loads kept in flight across columns.
 *
 * Why: gemm.cu's kernel fills every SM with one short-lived block per 8 columns,
 * so under programmatic launch the next kernel's blocks find no room until its
 * blocks exit, and each warp's few round trips leave the memory idle at the
 * start and the end of every kernel. Here a grid of blocks_per_sm blocks an SM
 * leaves room for the next kernel to become resident early and stream its first
 * weights while this one runs; within a warp a ring of `stages` groups keeps
 * loads in flight across the end of one column and the start of the next. */
#include "gemm.h"
#include "cuda_check.h"
#include "gemv_common.cuh"
#include "load_stream.cuh"
#include "pdl.h"
#include "row_norm.cuh"

typedef __nv_bfloat16 bf16;

#define GEMV_PERSIST_MAX_ROWS 4

static struct gemv_persist_cfg persist_cfg = {0, 3, 0};

void gemv_persist_set(struct gemv_persist_cfg c) { persist_cfg = c; }
struct gemv_persist_cfg gemv_persist_get(void) { return persist_cfg; }

int gemv_persist_takes(int m, int k) { return persist_cfg.blocks_per_sm > 0 && m >= 1 && m <= GEMV_PERSIST_MAX_ROWS && k % 8 == 0; }

/* A warp's place in its sequence of (column, group) items: columns gw, gw + nw,
 * ..., each in groups of 32 U vectors. */
struct gemv_cursor {
    int col, g;
};
__device__ __forceinline__ void cursor_next(gemv_cursor &c, int groups, int nw)
{
    if (++c.g == groups) c.g = 0, c.col += nw;
}

/* Weight row q of column col (gate and up rows for SwiGLU). */
template <int MODE>
__device__ __forceinline__ const uint4 *persist_row(const bf16 *w, int col, int q, int n, int k)
{
    int row = MODE == GEMV_SWIGLU ? q * n + col : col;
    return (const uint4 *)(w + (size_t)row * k);
}

/* Group c.g of column c.col: lane's vectors g 32 U + u 32 + lane (those before K). */
template <int P, int U, int MODE>
__device__ __forceinline__ void persist_load(uint4 wv[P][U], const bf16 *w, gemv_cursor c, int n, int k, int kv,
                                             int lane)
{
#pragma unroll
    for (int q = 0; q < P; q++) {
        const uint4 *wr = persist_row<MODE>(w, c.col, q, n, k);
#pragma unroll
        for (int u = 0; u < U; u++) {
            int idx = c.g * 32 * U + u * 32 + lane;
            if (idx < kv) wv[q][u] = load_stream_ordered(wr + idx);
        }
    }
}

template <int ROWS, int U, int S, int MODE>
__global__ void __launch_bounds__(GEMV_WARPS * 32, 2)
gemv_persist_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y, int m, int n,
                    int k, int accumulate, int l2_items)
{
    constexpr int P = MODE == GEMV_SWIGLU ? 2 : 1;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int nw = gridDim.x * GEMV_WARPS, gw = blockIdx.x * GEMV_WARPS + warp;
    const int kv = k / 8, groups = (kv + 32 * U - 1) / (32 * U);
    const int items = gw < n ? ((n - 1 - gw) / nw + 1) * groups : 0;
    uint4 wv[S][P][U];
    gemv_cursor ld = {gw, 0};
    /* the first S - 1 groups into registers and the next l2_items into L2 before
     * pdl_wait: no kernel writes weights */
#pragma unroll
    for (int s = 0; s < S - 1; s++)
        if (s < items) {
            persist_load<P, U, MODE>(wv[s], w, ld, n, k, kv, lane);
            cursor_next(ld, groups, nw);
        }
    {
        gemv_cursor pf = ld;
        for (int i = S - 1; i < items && i < S - 1 + l2_items; i++) {
#pragma unroll
            for (int q = 0; q < P; q++) {
                const uint4 *wr = persist_row<MODE>(w, pf.col, q, n, k);
#pragma unroll
                for (int u = 0; u < U; u++) {
                    int idx = pf.g * 32 * U + u * 32 + lane;
                    if (idx < kv) prefetch_l2_keep(wr + idx);
                }
            }
            cursor_next(pf, groups, nw);
        }
    }
    pdl_wait();
    pdl_trigger();
    const uint4 *xr[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) xr[r] = (const uint4 *)(x + (size_t)min(r, m - 1) * k);
    float acc[P][ROWS];
#pragma unroll
    for (int q = 0; q < P; q++)
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc[q][r] = 0.0f;
    gemv_cursor cc = {gw, 0};
    for (int i = 0; i < items; i += S) {
#pragma unroll
        for (int s = 0; s < S; s++) {
            if (i + s >= items) break;
            /* the load S - 1 items ahead goes to the slot item i + s - 1 left */
            if (i + s + S - 1 < items) {
                persist_load<P, U, MODE>(wv[(s + S - 1) % S], w, ld, n, k, kv, lane);
                cursor_next(ld, groups, nw);
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                int idx = cc.g * 32 * U + u * 32 + lane;
                if (idx >= kv) break;
                float wf[P][8];
#pragma unroll
                for (int q = 0; q < P; q++) norm_unpack8(wv[s][q][u], wf[q]);
#pragma unroll
                for (int r = 0; r < ROWS; r++) {
                    float xf[8];
                    norm_unpack8(__ldg(xr[r] + idx), xf);
#pragma unroll
                    for (int q = 0; q < P; q++)
#pragma unroll
                        for (int j = 0; j < 8; j++) acc[q][r] = fmaf(wf[q][j], xf[j], acc[q][r]);
                }
            }
            if (cc.g == groups - 1) {
                gemv_reduce_store<P, 1, ROWS, MODE>(acc, y, 0, m, n, cc.col, lane, accumulate);
#pragma unroll
                for (int q = 0; q < P; q++)
#pragma unroll
                    for (int r = 0; r < ROWS; r++) acc[q][r] = 0.0f;
            }
            cursor_next(cc, groups, nw);
        }
    }
}

static int device_sms(void)
{
    static int sms[64];
    int dev;
    cudaCheck(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 64) return pb_fail("gemv_persist: device %d", dev);
    if (!sms[dev]) cudaCheck(cudaDeviceGetAttribute(&sms[dev], cudaDevAttrMultiProcessorCount, dev));
    return sms[dev];
}

/* Blocks for n columns: at most blocks_per_sm an SM, and no more than the
 * columns a warp must take at that bound need, so every warp takes the same
 * number of columns or one fewer. */
static int persist_blocks(int n, int sms, int per_sm)
{
    long warps = (long)sms * per_sm * GEMV_WARPS;
    long cols_a_warp = (n + warps - 1) / warps;
    long need = (n + cols_a_warp - 1) / cols_a_warp;
    return (int)((need + GEMV_WARPS - 1) / GEMV_WARPS);
}

template <int ROWS, int U, int MODE>
static int persist_launch(int stages, int blocks, const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k,
                          int accumulate, int l2_items, cudaStream_t s, int pdl)
{
    dim3 grid(blocks), block(GEMV_WARPS * 32);
    if (stages == 2)
        cudaCheck(pdl_launch(gemv_persist_kernel<ROWS, U, 2, MODE>, grid, block, 0, s, pdl, x, w, y, m, n, k,
                             accumulate, l2_items));
    else if (stages == 3)
        cudaCheck(pdl_launch(gemv_persist_kernel<ROWS, U, 3, MODE>, grid, block, 0, s, pdl, x, w, y, m, n, k,
                             accumulate, l2_items));
    else
        return pb_fail("gemv_persist: %d stages (2 or 3)", stages);
    return PB_OK;
}

/* U: 8 vectors a lane and weight row for one row (4 KB a warp a group), half for
 * two weight rows (SwiGLU) or four rows of x, as gemm.cu's kernel keeps. */
template <int MODE>
static int persist_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s,
                        int pdl)
{
    const struct gemv_persist_cfg c = persist_cfg;
    if (!gemv_persist_takes(m, k)) return pb_fail("gemv_persist: %d rows, K=%d (1 to %d rows, K a multiple of 8, and on)", m, k, GEMV_PERSIST_MAX_ROWS);
    if (c.l2_items < 0) return pb_fail("gemv_persist: %d items into L2", c.l2_items);
    int sms = device_sms();
    if (sms <= 0) return PB_ERR;
    int blocks = persist_blocks(n, sms, c.blocks_per_sm);
    constexpr int U = MODE == GEMV_SWIGLU ? 4 : 8;
    if (m == 1) return persist_launch<1, U, MODE>(c.stages, blocks, x, w, y, m, n, k, accumulate, c.l2_items, s, pdl);
    if (m == 2) return persist_launch<2, U, MODE>(c.stages, blocks, x, w, y, m, n, k, accumulate, c.l2_items, s, pdl);
    return persist_launch<4, U / 2, MODE>(c.stages, blocks, x, w, y, m, n, k, accumulate, c.l2_items, s, pdl);
}

int gemv_persist_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s,
                      int pdl)
{
    return persist_rows<GEMV_PLAIN>(x, w, y, m, n, k, accumulate, s, pdl);
}

int gemv_persist_swiglu(const bf16 *x, const bf16 *w_gate_up, bf16 *act, int m, int inter, int k, cudaStream_t s,
                        int pdl)
{
    return persist_rows<GEMV_SWIGLU>(x, w_gate_up, act, m, inter, k, 0, s, pdl);
}

/* Decode linear layers streamed through shared memory: Y[M, N] = X[M, K] W[N, K]^T
 * for up to a few dozen rows (one-token steps), on mma.sync bf16 tensor cores; see
 * gemm.h.
 *
 * Why another kernel: gemm_skinny keeps its weights in registers and its rows of X
 * come from L2 at every step, with one batch of loads in flight per warp between
 * uses, so at 16 and 64 rows it streams 59% and 26% of the copy rate (H200,
 * docs/PERF.md). Here a block of 8 warps takes 128 weight rows (16 a warp; at 64
 * rows a block, 4 warps and 64 weight rows: gemm_stream_set_warps) and all of its
 * rows of X, and both go through a 4-stage cp.async pipeline in 64-wide K tiles:
 * every weight byte is read once, each X tile once per block, and three tiles are
 * in flight while the fourth is multiplied.
 *
 * N = 4096 gives only 32 such blocks, too few for 132 SMs, so K is split among the
 * blocks of a thread-block cluster (up to 8): block r takes K tiles [r T / S,
 * (r + 1) T / S), and after its loop each block leaves its fp32 sums in its shared
 * memory; then each block adds, for its share of the outputs, the S partial sums
 * in rank order 0, 1, ..., S - 1, reading the others' shared memory over the
 * cluster (distributed shared memory). No workspace, no atomics, one launch.
 *
 * Bits. An output element is the mma's own sum of its row and column over each
 * k16 step, the steps of a block in ascending K, then the blocks' sums in rank
 * order. None of that depends on the row count, on which row tile or block a row
 * lands in, or on the row tiles of a block (NT): only on K and the split count S,
 * which gemm_stream_splits takes from (N, K) alone. So a row's bits never depend on
 * the batch it rides in. They are neither the GEMV's nor gemm_skinny's bits.
 *
 * Programmatic launch: the first three weight tiles are requested before
 * pdl_wait (no kernel writes weights), optionally with further tiles prefetched
 * into L2; X is read only after it. */
#include <cooperative_groups.h>
#include "gemm.h"
#include "cuda_check.h"
#include "mma.cuh"
#include "pdl.h"

namespace cg = cooperative_groups;
typedef __nv_bfloat16 bf16;

#define ST_WARPS 8
#define ST_BN (16 * ST_WARPS)   /* weight rows of the 8-warp block gemm_stream_splits counts */
#define ST_BK 64                /* K a pipeline stage */
#define ST_LD (ST_BK + 8)       /* shared row of 144 bytes: ldmatrix's 8 rows hit 8 different bank groups */
#define ST_STAGES 4
#define ST_MAX_SPLITS 8         /* a portable cluster */
#define ST_SPLIT_TARGET 256     /* blocks wanted: two of ~110 KB an SM on 132 SMs, a little under */

template <int NT, int W> struct st_layout {
    static constexpr int bn = 16 * W;                       /* weight rows a block: 16 a warp */
    static constexpr int rows = NT * 8;                     /* rows of X a block */
    static constexpr int w_elems = bn * ST_LD;
    static constexpr int stage_elems = w_elems + rows * ST_LD;
    static constexpr int red_ld = rows + 1;                 /* fp32 sums [bn][rows + 1]: no bank conflicts */
    static constexpr size_t pipe_bytes = (size_t)ST_STAGES * stage_elems * sizeof(bf16);
    static constexpr size_t red_bytes = (size_t)bn * red_ld * sizeof(float);
    static constexpr size_t bytes = pipe_bytes > red_bytes ? pipe_bytes : red_bytes;
};

__device__ __forceinline__ void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

/* Weight row of the block's local row r (0..BN-1), or -1 past N. SWIGLU: the
 * block's BN/2 output columns c0.. take gate rows c0 + r (r < BN/2) and up rows
 * n + c0 + r - BN/2, so one block holds both halves of each of its outputs. */
template <bool SWIGLU, int BN> __device__ __forceinline__ int st_weight_row(int c0, int r, int n)
{
    if (SWIGLU) {
        int c = c0 + r % (BN / 2);
        return c < n ? (r < BN / 2 ? c : n + c) : -1;
    }
    return c0 + r < n ? c0 + r : -1;
}

/* W warps a block, 16 weight rows each: a warp's rows see the same loads and mma
 * sequence whatever W is, so W changes the blocks, not the bits. */
template <int NT, bool SWIGLU, int W>
__global__ void __launch_bounds__(W * 32)
stream_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y, int m, int n, int k,
              int accumulate, int splits, int prefetch_tiles)
{
    typedef st_layout<NT, W> L;
    constexpr int BN = L::bn;
    extern __shared__ __align__(16) unsigned char st_raw[];
    bf16 *sm = (bf16 *)st_raw;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int split = blockIdx.x;  /* the cluster rank when split */
    const int c0 = blockIdx.y * (SWIGLU ? BN / 2 : BN);
    const int row0 = blockIdx.z * L::rows;
    const int ktiles = (k + ST_BK - 1) / ST_BK;
    const int t0 = (int)((long long)split * ktiles / splits), t1 = (int)((long long)(split + 1) * ktiles / splits);
    const int tiles = t1 - t0;

    auto load_w = [&](int stage, int tile) {
        bf16 *ws = sm + stage * L::stage_elems;
        const int kb = tile * ST_BK;
        for (int c = tid; c < BN * (ST_BK / 8); c += W * 32) {
            int r = c >> 3, kk = kb + (c & 7) * 8, wr = st_weight_row<SWIGLU, BN>(c0, r, n);
            bool ok = wr >= 0 && kk < k;
            cp_async16(ws + r * ST_LD + (c & 7) * 8, w + (ok ? (size_t)wr * k + kk : 0), ok);
        }
    };
    auto load_x = [&](int stage, int tile) {
        bf16 *xs = sm + stage * L::stage_elems + L::w_elems;
        const int kb = tile * ST_BK;
        for (int c = tid; c < L::rows * (ST_BK / 8); c += W * 32) {
            int r = c >> 3, kk = kb + (c & 7) * 8;
            bool ok = row0 + r < m && kk < k;
            cp_async16(xs + r * ST_LD + (c & 7) * 8, x + (ok ? (size_t)(row0 + r) * k + kk : 0), ok);
        }
    };

    /* weights before pdl_wait: one commit group a stage, then X's group */
#pragma unroll
    for (int s = 0; s < ST_STAGES - 1; s++) {
        if (s < tiles) load_w(s, t0 + s);
        cp_async_commit();
    }
    for (int t = t0 + ST_STAGES - 1 + tid / BN; t < min(t1, t0 + ST_STAGES - 1 + prefetch_tiles);
         t += W * 32 / BN) {
        int wr = st_weight_row<SWIGLU, BN>(c0, tid % BN, n);
        if (wr >= 0) prefetch_l2(w + (size_t)wr * k + (size_t)t * ST_BK);
    }
    pdl_wait();
    pdl_trigger();
#pragma unroll
    for (int s = 0; s < ST_STAGES - 1; s++)
        if (s < tiles) load_x(s, t0 + s);
    cp_async_commit();

    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    /* ldmatrix addresses: A (16 weight rows x 16 k) as matrices rows 0-7 / 8-15 x
     * k 0-7 / 8-15; B (8 rows of X x 32 k) as four k-slices of 8 */
    const int a_row = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, a_k = (lane >> 4) * 8;
    const int b_row = lane & 7, b_k = (lane >> 3) * 8;
    for (int i = 0; i < tiles; i++) {
        if (i == 0) cp_async_wait<0>();  /* X's group came after the weights' */
        else cp_async_wait<ST_STAGES - 2>();
        __syncthreads();  /* tile i landed for all, and stage (i - 1) % STAGES is free */
        const int nx = i + ST_STAGES - 1;
        if (nx < tiles) {
            load_w(nx % ST_STAGES, t0 + nx);
            load_x(nx % ST_STAGES, t0 + nx);
        }
        cp_async_commit();
        const bf16 *ws = sm + (i % ST_STAGES) * L::stage_elems, *xs = ws + L::w_elems;
#pragma unroll
        for (int kk = 0; kk < ST_BK; kk += 32) {
            uint32_t a0[4], a1[4];
            ldmatrix_x4(a0, ws + a_row * ST_LD + kk + a_k);
            ldmatrix_x4(a1, ws + a_row * ST_LD + kk + 16 + a_k);
#pragma unroll
            for (int j = 0; j < NT; j++) {
                uint32_t b[4];
                ldmatrix_x4(b, xs + (j * 8 + b_row) * ST_LD + kk + b_k);
                mma_bf16(acc[j], a0, b[0], b[1]);
                mma_bf16(acc[j], a1, b[2], b[3]);
            }
        }
    }
    cp_async_wait<0>();
    __syncthreads();  /* every warp is done with the pipeline: its memory takes the sums */
    float *red = (float *)st_raw;
    {
        const int g = lane >> 2, t = lane & 3, r = warp * 16 + g;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            int c = j * 8 + 2 * t;
            red[r * L::red_ld + c] = acc[j][0];
            red[r * L::red_ld + c + 1] = acc[j][1];
            red[(r + 8) * L::red_ld + c] = acc[j][2];
            red[(r + 8) * L::red_ld + c + 1] = acc[j][3];
        }
    }
    cg::cluster_group cluster = cg::this_cluster();
    if (splits > 1) cluster.sync();
    else __syncthreads();
    /* outputs (row of X, column) of this block; rank r adds up its share of them */
    constexpr int cols = SWIGLU ? BN / 2 : BN;
    constexpr int outs = cols * L::rows;
    const int e0 = split * outs / splits, e1 = (split + 1) * outs / splits;
    for (int e = e0 + tid; e < e1; e += W * 32) {
        const int xr = e / cols, lc = e % cols, row = row0 + xr, col = c0 + lc;
        float v = 0.0f, up = 0.0f;
        for (int q = 0; q < splits; q++) {
            const float *rq = splits > 1 ? cluster.map_shared_rank(red, q) : red;
            v = q ? v + rq[lc * L::red_ld + xr] : rq[lc * L::red_ld + xr];
            if (SWIGLU) up = q ? up + rq[(lc + cols) * L::red_ld + xr] : rq[(lc + cols) * L::red_ld + xr];
        }
        if (row >= m || col >= n) continue;
        bf16 *out = y + (size_t)row * n + col;
        if (SWIGLU) {
            /* k_swiglu's arithmetic on the bf16 values a plain product would have stored */
            float gt = __bfloat162float(__float2bfloat16(v));
            float u = __bfloat162float(__float2bfloat16(up));
            float silu = __bfloat162float(__float2bfloat16(gt / (1.0f + expf(-gt))));
            *out = __float2bfloat16(silu * u);
        } else {
            if (accumulate) v += __bfloat162float(*out);
            *out = __float2bfloat16(v);
        }
    }
    if (splits > 1) cluster.sync();  /* no block leaves while another reads its sums */
}

template <int NT, bool SWIGLU, int W>
static int stream_launch(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int splits,
                         int prefetch_tiles, cudaStream_t s, int pdl)
{
    typedef st_layout<NT, W> L;
    constexpr int BN = L::bn;
    /* over 48 KB of shared memory must be allowed per device, once */
    static unsigned configured;
    int dev;
    cudaCheck(cudaGetDevice(&dev));
    if (dev < 32 && !(configured >> dev & 1u)) {
        cudaCheck(cudaFuncSetAttribute(stream_kernel<NT, SWIGLU, W>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)L::bytes));
        configured |= 1u << dev;
    }
    const int cols = SWIGLU ? BN / 2 : BN;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(splits, (n + cols - 1) / cols, (m + L::rows - 1) / L::rows);
    cfg.blockDim = dim3(W * 32);
    cfg.dynamicSmemBytes = L::bytes;
    cfg.stream = s;
    cudaLaunchAttribute attr[2];
    int na = 0;
    if (splits > 1) {
        attr[na].id = cudaLaunchAttributeClusterDimension;
        attr[na].val.clusterDim.x = splits;
        attr[na].val.clusterDim.y = 1;
        attr[na].val.clusterDim.z = 1;
        na++;
    }
    if (pdl) {
        attr[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[na].val.programmaticStreamSerializationAllowed = 1;
        na++;
    }
    cfg.attrs = attr;
    cfg.numAttrs = na;
    cudaCheck(cudaLaunchKernelEx(&cfg, stream_kernel<NT, SWIGLU, W>, x, w, y, m, n, k, accumulate, splits,
                                 prefetch_tiles));
    return PB_OK;
}

/* K-splits for (N, K): enough blocks for the SMs (ST_SPLIT_TARGET), at most 4
 * (on an H200 8 were slower than 3 or 4 at N = 4096 for 1, 16 and 64 rows:
 * docs/PERF.md), and at least 4 K tiles a block so the pipeline fills. From the
 * shape alone, never the row count or the device: the split sets the bits. */
int gemm_stream_splits(int n, int k, int swiglu)
{
    int cols = swiglu ? ST_BN / 2 : ST_BN;
    int blocks = (n + cols - 1) / cols, ktiles = (k + ST_BK - 1) / ST_BK;
    int s = ST_SPLIT_TARGET / blocks;
    if (s > 4) s = 4;
    if (s > ktiles / 4) s = ktiles / 4;
    return s < 1 ? 1 : s;
}

static int stream_warps = 0;
void gemm_stream_set_warps(int warps) { stream_warps = warps; }
int gemm_stream_warps(void) { return stream_warps; }

template <bool SWIGLU, int W>
static int stream_rows_tile(int rows, const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate,
                            int splits, int prefetch_tiles, cudaStream_t s, int pdl)
{
    switch (rows) {
    case 8: return stream_launch<1, SWIGLU, W>(x, w, y, m, n, k, accumulate, splits, prefetch_tiles, s, pdl);
    case 16: return stream_launch<2, SWIGLU, W>(x, w, y, m, n, k, accumulate, splits, prefetch_tiles, s, pdl);
    case 32: return stream_launch<4, SWIGLU, W>(x, w, y, m, n, k, accumulate, splits, prefetch_tiles, s, pdl);
    case 64: return stream_launch<8, SWIGLU, W>(x, w, y, m, n, k, accumulate, splits, prefetch_tiles, s, pdl);
    case 128: return stream_launch<16, SWIGLU, W>(x, w, y, m, n, k, accumulate, splits, prefetch_tiles, s, pdl);
    default: return pb_fail("gemm_stream: row tile %d (8, 16, 32, 64 or 128)", rows);
    }
}

template <bool SWIGLU>
static int stream_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int splits,
                       int row_tile, int prefetch_tiles, cudaStream_t s, int pdl)
{
    if (k % 8) return pb_fail("gemm_stream: K=%d is not a multiple of 8", k);
    if (splits < 1 || splits > ST_MAX_SPLITS)
        return pb_fail("gemm_stream: %d K-splits (1 to %d)", splits, ST_MAX_SPLITS);
    if (m <= 0 || n <= 0) return PB_OK;
    int rows = row_tile ? row_tile : m <= 8 ? 8 : m <= 16 ? 16 : m <= 32 ? 32 : 64;
    if (stream_warps != 0 && stream_warps != 4 && stream_warps != 8)
        return pb_fail("gemm_stream: %d warps a block (4 or 8, 0: by rows)", stream_warps);
    /* by rows: at 64 rows a block the batch-64 step took 11.27 against 11.64 ms in
     * blocks of 4 warps, at 16 rows 6.03 against 5.80 (H200, docs/PERF.md) */
    const int warps = stream_warps ? stream_warps : rows >= 64 ? 4 : 8;
    if (warps == 4)
        return stream_rows_tile<SWIGLU, 4>(rows, x, w, y, m, n, k, accumulate, splits, prefetch_tiles, s, pdl);
    return stream_rows_tile<SWIGLU, 8>(rows, x, w, y, m, n, k, accumulate, splits, prefetch_tiles, s, pdl);
}

int gemm_stream_cfg(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int swiglu,
                    int splits, int row_tile, int prefetch_tiles, cudaStream_t s, int pdl)
{
    if (swiglu) return stream_rows<true>(x, w, y, m, n, k, 0, splits, row_tile, prefetch_tiles, s, pdl);
    return stream_rows<false>(x, w, y, m, n, k, accumulate, splits, row_tile, prefetch_tiles, s, pdl);
}

int gemm_stream(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s, int pdl)
{
    return stream_rows<false>(x, w, y, m, n, k, accumulate, gemm_stream_splits(n, k, 0), 0, 0, s, pdl);
}

int gemm_stream_swiglu(const bf16 *x, const bf16 *w_gate_up, bf16 *act, int m, int inter, int k, cudaStream_t s,
                       int pdl)
{
    return stream_rows<true>(x, w_gate_up, act, m, inter, k, 0, gemm_stream_splits(inter, k, 1), 0, 0, s, pdl);
}

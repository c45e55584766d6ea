/* Decode linear layers on the tensor cores: Y[M, N] = X[M, K] W[N, K]^T for a few
 * rows (one-token steps), the weights streamed once for all rows; see gemm.h.
 *
 * Why tensor cores for a memory-bound product: the GEMV (gemm_rows.cu) does each
 * multiply-add on the CUDA cores, and at 16 rows that arithmetic (16 FMAs per
 * weight, plus unpacking) costs more than streaming the weight; mma.sync does it
 * for free, so the kernel stays at the weight-bytes rate up to 64 rows.
 *
 * Layout. The weights are the mma's A operand (16 output columns a tile), the rows
 * of X its B operand (8 rows a tile), so one tile of weights serves every row tile.
 * K goes in chunks of 32: lane (g = lane / 4, t = lane % 4) loads the 16 bytes
 * [8t, 8t + 8) of the chunk from weight rows g and g + 8 and from X row g. The
 * reduction over K is a sum, so K may be permuted freely as long as A and B see
 * the same permutation: physical k 8t..8t+3 play the mma's logical k 2t, 2t + 1,
 * 2t + 8, 2t + 9 of the first k16 step and 8t+4..8t+7 those of the second. That
 * gives 16-byte, 64-byte-contiguous loads and no shared-memory staging.
 *
 * Bits. The 8 warps of a block split K by chunks (warp w takes chunks w, w + 8,
 * ...), each accumulating in fp32 in ascending order; warp 0 then adds the others'
 * sums in the order 1..7. A tensor core computes each output element from its own
 * row and column alone. So an element's arithmetic depends on K only: not on how
 * many rows share the call, where a row sits in its tile, how many column tiles a
 * block takes, or on the rows being chunked over blocks. It is not the GEMV's
 * arithmetic: the decode path uses one or the other for all its row counts. */
#include "gemm.h"
#include "cuda_check.h"
#include "load_stream.cuh"
#include "mma.cuh"
#include "pdl.h"

typedef __nv_bfloat16 bf16;

#define SK_WARPS 8        /* K split over the warps of a block: fixed, it sets the order of the sums */
#define SK_MAX_NT 8       /* row tiles of 8 a block: 64 rows; more rows take more blocks (grid y) */
#define SK_U 4            /* chunks in flight per warp and weight row: 4 x 16 B x 2 rows x MT per lane */

__device__ __forceinline__ void sk_mma(float d[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* A warp's UB chunks from chunk c0 on (chunks c0, c0 + SK_WARPS, ...) of its
 * weight rows: lane t's 16 bytes of each, zero past K. */
template <int UB, int MT>
__device__ __forceinline__ void sk_load_chunks(uint4 a[UB][MT][2], const uint4 *const wp[MT][2], int c0, int t,
                                               int kv)
{
#pragma unroll
    for (int u = 0; u < UB; u++) {
        int idx = (c0 + SK_WARPS * u) * 4 + t;
#pragma unroll
        for (int q = 0; q < MT; q++)
#pragma unroll
            for (int h = 0; h < 2; h++) a[u][q][h] = idx < kv ? load_stream_ordered(wp[q][h] + idx) : make_uint4(0, 0, 0, 0);
    }
}

/* acc += the UB chunks from c0 on (those before the last chunk) against the rows of X. */
template <int UB, int NT, int MT>
__device__ __forceinline__ void sk_chunks_mma(float acc[MT][NT][4], const uint4 a[UB][MT][2], const uint4 *const xp[NT],
                                              int c0, int chunks, int t, int kv)
{
    const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < UB; u++) {
        if (c0 + SK_WARPS * u >= chunks) break;  /* uniform over the warp: mma needs every lane */
        int idx = (c0 + SK_WARPS * u) * 4 + t;
#pragma unroll
        for (int i = 0; i < NT; i++) {
            /* past K (k not a multiple of 32) A and B are zero: adds +0 */
            uint4 b = idx < kv ? __ldg(xp[i] + idx) : zero;
#pragma unroll
            for (int q = 0; q < MT; q++) {
                const uint4 lo = a[u][q][0], hi = a[u][q][1];
                sk_mma(acc[q][i], lo.x, hi.x, lo.y, hi.y, b.x, b.y);
                sk_mma(acc[q][i], lo.z, hi.z, lo.w, hi.w, b.z, b.w);
            }
        }
    }
}

/* Warp 0 adds the other warps' sums in a fixed order, one column tile at a time,
 * then writes (SwiGLU: silu(gate) * up as k_swiglu rounds it). Every warp calls it. */
template <int NT, int MT, bool SWIGLU>
__device__ __forceinline__ void skinny_finish(float acc[MT][NT][4], float red[SK_WARPS - 1][NT * 4][32], int warp,
                                              int lane, int g, int t, int col0, int row0, int m, int n, bf16 *y,
                                              int accumulate)
{
#pragma unroll
    for (int q = 0; q < MT; q++) {
        if (warp)
#pragma unroll
            for (int i = 0; i < NT; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) red[warp - 1][i * 4 + j][lane] = acc[q][i][j];
        __syncthreads();
        if (!warp)
            for (int v = 0; v < SK_WARPS - 1; v++)
#pragma unroll
                for (int i = 0; i < NT; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) acc[q][i][j] += red[v][i * 4 + j][lane];
        __syncthreads();
    }
    if (warp) return;
    /* acc[q][i][j]: weight row (tile q) g + 8 (j / 2), X row i * 8 + 2 t + (j % 2) */
#pragma unroll
    for (int i = 0; i < NT; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int row = row0 + i * 8 + 2 * t + (j & 1);
            if (row >= m) continue;
            if (SWIGLU) {
                int col = col0 + g + 8 * (j >> 1);
                if (col >= n) continue;
                /* k_swiglu's arithmetic on the bf16 values a plain product would have stored */
                float gt = __bfloat162float(__float2bfloat16(acc[0][i][j]));
                float up = __bfloat162float(__float2bfloat16(acc[MT - 1][i][j]));
                float silu = __bfloat162float(__float2bfloat16(gt / (1.0f + expf(-gt))));
                y[(size_t)row * n + col] = __float2bfloat16(silu * up);
            } else {
#pragma unroll
                for (int q = 0; q < MT; q++) {
                    int col = col0 + q * 16 + g + 8 * (j >> 1);
                    if (col >= n) continue;
                    bf16 *out = y + (size_t)row * n + col;
                    float v = acc[q][i][j];
                    if (accumulate) v += __bfloat162float(*out);
                    *out = __float2bfloat16(v);
                }
            }
        }
}

/* The X rows lane group g of a block reads: row g of each of its NT tiles of 8 rows
 * from row0, clamped to the last row (rows past m are not written). */
template <int NT>
__device__ __forceinline__ void skinny_x_rows(const bf16 *x, int m, int k, int row0, int g, const uint4 *xp[NT])
{
#pragma unroll
    for (int i = 0; i < NT; i++) xp[i] = (const uint4 *)(x + (size_t)min(row0 + i * 8 + g, m - 1) * k);
}

/* Where a thread of a skinny block works: its warp and lane, the lane's group g
 * (rows of the mma fragment) and t, the block's first column col0 and first row row0,
 * and K in 16-byte vectors (kv) and in chunks of four of them. */
struct skinny_pos {
    int warp, lane, g, t, col0, row0, kv, chunks;
};
template <int NT, int MT, bool SWIGLU>
__device__ __forceinline__ skinny_pos skinny_pos_of(int k)
{
    skinny_pos p;
    p.warp = threadIdx.x >> 5;
    p.lane = threadIdx.x & 31;
    p.g = p.lane >> 2;
    p.t = p.lane & 3;
    p.col0 = blockIdx.x * 16 * (SWIGLU ? 1 : MT);
    p.row0 = blockIdx.y * 8 * NT;
    p.kv = k / 8;
    p.chunks = (p.kv + 3) / 4;
    return p;
}

/* The weight rows lane group g of a block streams: for each of its MT column tiles
 * (SwiGLU: gate and up of one tile) the rows g and g + 8 from col0, clamped to the
 * last row so a partial tile reads valid memory (its columns are not written). */
template <int MT, bool SWIGLU>
__device__ __forceinline__ void skinny_weight_rows(const bf16 *w, int n, int k, int col0, int g, const uint4 *wp[MT][2])
{
#pragma unroll
    for (int q = 0; q < MT; q++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int c = min(col0 + (SWIGLU ? 0 : q * 16) + g + 8 * h, n - 1);
            wp[q][h] = (const uint4 *)(w + (size_t)(SWIGLU ? q * n + c : c) * k);
        }
}

/* NT row tiles of 8 rows, MT column tiles of 16 weight rows per block. SWIGLU:
 * MT = 2, tile 0 the gate rows [c, c + 16) and tile 1 the up rows n + c..., so the
 * epilogue writes silu(gate) * up as k_swiglu rounds it. */
template <int NT, int MT, bool SWIGLU>
__global__ void __launch_bounds__(SK_WARPS * 32)
skinny_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y, int m, int n, int k,
              int accumulate)
{
    __shared__ float red[SK_WARPS - 1][NT * 4][32];
    const skinny_pos p = skinny_pos_of<NT, MT, SWIGLU>(k);
    const int warp = p.warp, lane = p.lane, g = p.g, t = p.t, col0 = p.col0, row0 = p.row0, kv = p.kv, chunks = p.chunks;
    const uint4 *wp[MT][2];
    skinny_weight_rows<MT, SWIGLU>(w, n, k, col0, g, wp);
    /* Few rows (NT <= 2): one buffer of SK_U chunks, loaded whole, then multiplied.
     * More rows: two buffers of SK_U / 2 (the same registers), one streaming while
     * the other is multiplied; with one buffer their larger sums left the warp
     * waiting on every load (H200, 64 rows: 2.54 against 2.12 ms for down), while
     * at 1 and 16 rows two full buffers were slower (qkv at 1 row 1.15 against 0.98 ms;
     * likely their 166-190 registers a thread, against 102-128, cost blocks an SM). */
    constexpr bool TWO = NT > 2;
    constexpr int UB = TWO ? SK_U / 2 : SK_U;
    uint4 a0[UB][MT][2], a1[TWO ? UB : 1][MT][2];
    sk_load_chunks<UB, MT>(a0, wp, warp, t, kv);  /* weights stream before pdl_wait: no kernel writes them */
    if constexpr (TWO) sk_load_chunks<UB, MT>(a1, wp, warp + SK_WARPS * UB, t, kv);
    pdl_wait();
    pdl_trigger();
    const uint4 *xp[NT];
    skinny_x_rows<NT>(x, m, k, row0, g, xp);
    float acc[MT][NT][4] = {};
    /* the chunks in ascending order either way: the same sums */
    if constexpr (!TWO) {
        for (int c0 = warp; c0 < chunks; c0 += SK_WARPS * UB) {
            if (c0 != warp) sk_load_chunks<UB, MT>(a0, wp, c0, t, kv);
            sk_chunks_mma<UB, NT, MT>(acc, a0, xp, c0, chunks, t, kv);
        }
    } else {
        for (int c0 = warp; c0 < chunks; c0 += 2 * SK_WARPS * UB) {
            sk_chunks_mma<UB, NT, MT>(acc, a0, xp, c0, chunks, t, kv);
            if (c0 + SK_WARPS * UB >= chunks) break;
            sk_load_chunks<UB, MT>(a0, wp, c0 + 2 * SK_WARPS * UB, t, kv);
            sk_chunks_mma<UB, NT, MT>(acc, a1, xp, c0 + SK_WARPS * UB, chunks, t, kv);
            sk_load_chunks<UB, MT>(a1, wp, c0 + 3 * SK_WARPS * UB, t, kv);
        }
    }
    skinny_finish<NT, MT, SWIGLU>(acc, red, warp, lane, g, t, col0, row0, m, n, y, accumulate);
}

/* skinny_kernel with each lane's 16-byte weight vectors copied by cp.async into
 * its own slots of a ring of S groups of UB chunks in shared memory
 * (DECODE_STREAM_ASYNC): S - 1 groups stay in flight while the warp multiplies the
 * oldest, and the copies hold no registers. The chunks (warp w: w, w + 8, ...),
 * their order, the mma and the reduction are skinny_kernel's: the same bits. Ring
 * layout [S][UB][MT][2][threads] of 16 bytes, consecutive lanes consecutive. */
template <int NT, int MT, bool SWIGLU, int UB>
__global__ void __launch_bounds__(SK_WARPS * 32)
skinny_async_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y, int m, int n, int k,
                    int accumulate, int S)
{
    extern __shared__ __align__(16) uint4 ring[];
    __shared__ float red[SK_WARPS - 1][NT * 4][32];
    const skinny_pos p = skinny_pos_of<NT, MT, SWIGLU>(k);
    const int warp = p.warp, lane = p.lane, g = p.g, t = p.t, col0 = p.col0, row0 = p.row0, kv = p.kv, chunks = p.chunks;
    const uint4 *wp[MT][2];
    skinny_weight_rows<MT, SWIGLU>(w, n, k, col0, g, wp);
    const int mine = chunks > warp ? (chunks - warp + SK_WARPS - 1) / SK_WARPS : 0;  /* chunks of this warp */
    const int groups = (mine + UB - 1) / UB;
    auto slot = [&](int st, int u, int q, int h) {
        return ring + ((size_t)((st * UB + u) * MT + q) * 2 + h) * (SK_WARPS * 32) + threadIdx.x;
    };
    auto issue = [&](int gr) {  /* group gr: this warp's chunks UB gr .. UB gr + UB - 1, one commit group */
        if (gr < groups) {
            const int st = gr % S;
#pragma unroll
            for (int u = 0; u < UB; u++) {
                const int idx = (warp + SK_WARPS * (UB * gr + u)) * 4 + t;
                if (idx < kv)
#pragma unroll
                    for (int q = 0; q < MT; q++)
#pragma unroll
                        for (int h = 0; h < 2; h++) cp_async16_ordered(slot(st, u, q, h), wp[q][h] + idx);
            }
        }
        cp_async_commit();
    };
    for (int gr = 0; gr < S - 1; gr++) issue(gr);  /* weights: before pdl_wait */
    pdl_wait();
    pdl_trigger();
    const uint4 *xp[NT];
    skinny_x_rows<NT>(x, m, k, row0, g, xp);
    float acc[MT][NT][4] = {};
    const uint4 zero = make_uint4(0, 0, 0, 0);
    for (int gr = 0; gr < groups; gr++) {
        issue(gr + S - 1);
        cp_async_wait_dyn(S - 1);  /* group gr has landed */
        const int st = gr % S;
#pragma unroll
        for (int u = 0; u < UB; u++) {
            const int c = warp + SK_WARPS * (UB * gr + u);
            if (c >= chunks) break;  /* uniform over the warp: mma needs every lane */
            const int idx = c * 4 + t;
            uint4 a[MT][2];
#pragma unroll
            for (int q = 0; q < MT; q++)
#pragma unroll
                for (int h = 0; h < 2; h++) a[q][h] = idx < kv ? *slot(st, u, q, h) : zero;
#pragma unroll
            for (int i = 0; i < NT; i++) {
                uint4 b = idx < kv ? __ldg(xp[i] + idx) : zero;
#pragma unroll
                for (int q = 0; q < MT; q++) {
                    sk_mma(acc[q][i], a[q][0].x, a[q][1].x, a[q][0].y, a[q][1].y, b.x, b.y);
                    sk_mma(acc[q][i], a[q][0].z, a[q][1].z, a[q][0].w, a[q][1].w, b.z, b.w);
                }
            }
        }
    }
    cp_async_wait_dyn(0);  /* the empty groups past the end */
    skinny_finish<NT, MT, SWIGLU>(acc, red, warp, lane, g, t, col0, row0, m, n, y, accumulate);
}

static struct skinny_stream_cfg g_skinny_stream = {DECODE_STREAM_REGISTERS, 4, 2, 0};

void gemm_skinny_set_stream(struct skinny_stream_cfg c) { g_skinny_stream = c; }
struct skinny_stream_cfg gemm_skinny_stream(void) { return g_skinny_stream; }

template <int NT, int MT, bool SWIGLU, int UB>
static int skinny_async_launch(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int stages,
                               cudaStream_t s, int pdl)
{
    const size_t smem = (size_t)stages * UB * MT * 2 * SK_WARPS * 32 * 16;
    static int raised[64];  /* per device: the dynamic shared-memory limit this kernel was raised to */
    int dev = 0;
    cudaCheck(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 64) return pb_fail("gemm_skinny: device %d", dev);
    if ((int)smem > raised[dev]) {
        cudaCheck(cudaFuncSetAttribute(skinny_async_kernel<NT, MT, SWIGLU, UB>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        cudaCheck(cudaFuncSetAttribute(skinny_async_kernel<NT, MT, SWIGLU, UB>,
                                       cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
        raised[dev] = (int)smem;
    }
    int cols = 16 * (SWIGLU ? 1 : MT);
    dim3 grid((n + cols - 1) / cols, (m + 8 * NT - 1) / (8 * NT));
    cudaCheck(pdl_launch(skinny_async_kernel<NT, MT, SWIGLU, UB>, grid, dim3(SK_WARPS * 32), smem, s, pdl, x, w, y, m,
                         n, k, accumulate, stages));
    return PB_OK;
}

template <int NT, int MT, bool SWIGLU>
static int skinny_launch(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s,
                         int pdl)
{
    const struct skinny_stream_cfg c = gemm_skinny_stream();
    if (c.mode == DECODE_STREAM_ASYNC) {
        if (c.stages < 2 || c.stages > 8) return pb_fail("gemm_skinny: %d cp.async stages (2-8)", c.stages);
        switch (c.vecs) {
        case 1: return skinny_async_launch<NT, MT, SWIGLU, 1>(x, w, y, m, n, k, accumulate, c.stages, s, pdl);
        case 2: return skinny_async_launch<NT, MT, SWIGLU, 2>(x, w, y, m, n, k, accumulate, c.stages, s, pdl);
        case 4: return skinny_async_launch<NT, MT, SWIGLU, 4>(x, w, y, m, n, k, accumulate, c.stages, s, pdl);
        default: return pb_fail("gemm_skinny: %d cp.async chunks a group (1, 2 or 4)", c.vecs);
        }
    }
    int cols = 16 * (SWIGLU ? 1 : MT);
    dim3 grid((n + cols - 1) / cols, (m + 8 * NT - 1) / (8 * NT));
    cudaCheck(pdl_launch(skinny_kernel<NT, MT, SWIGLU>, grid, dim3(SK_WARPS * 32), 0, s, pdl, x, w, y, m, n, k,
                         accumulate));
    return PB_OK;
}

/* Row tiles by the row count: fewer tiles, less X traffic per weight byte. */
template <int MT, bool SWIGLU>
static int skinny_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s,
                       int pdl)
{
    if (k % 8) return pb_fail("gemm_skinny: K=%d is not a multiple of 8", k);
    if (m <= 0 || n <= 0) return PB_OK;
    if (m <= 8) return skinny_launch<1, MT, SWIGLU>(x, w, y, m, n, k, accumulate, s, pdl);
    if (m <= 16) return skinny_launch<2, MT, SWIGLU>(x, w, y, m, n, k, accumulate, s, pdl);
    if (m <= 32) return skinny_launch<4, MT, SWIGLU>(x, w, y, m, n, k, accumulate, s, pdl);
    return skinny_launch<SK_MAX_NT, MT, SWIGLU>(x, w, y, m, n, k, accumulate, s, pdl);
}

/* Column tiles a block: two halve the X traffic per weight byte (it comes from L2,
 * and at 16 rows it is as many bytes as the weights), one doubles the blocks. On an
 * H100 one tile streamed faster at 1 row for most Llama-2-7B shapes, two at 16 and
 * 64 rows for all of them (docs/PERF.md). The bits are the same either way. */
int gemm_skinny_col_tiles(int m) { return m <= 8 ? 1 : 2; }

int gemm_skinny_mt(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int mt,
                   cudaStream_t s, int pdl)
{
    if (mt == 2) return skinny_rows<2, false>(x, w, y, m, n, k, accumulate, s, pdl);
    return skinny_rows<1, false>(x, w, y, m, n, k, accumulate, s, pdl);
}

int gemm_skinny(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s, int pdl)
{
    const struct skinny_stream_cfg c = gemm_skinny_stream();
    int mt = c.mt ? c.mt : gemm_skinny_col_tiles(m);  /* the same bits either way */
    return gemm_skinny_mt(x, w, y, m, n, k, accumulate, mt, s, pdl);
}

int gemm_skinny_swiglu(const bf16 *x, const bf16 *w_gate_up, bf16 *act, int m, int inter, int k, cudaStream_t s,
                       int pdl)
{
    return skinny_rows<2, true>(x, w_gate_up, act, m, inter, k, 0, s, pdl);
}

/* gemm_skinny's tensor-core decode product with its weights streamed into shared
 * memory by bulk copies (bulk_copy.cuh) instead of through registers; see gemm.h
 * (gemm_skinny_set_stream) and docs/PERF.md.
 *
 * Why: gemm_skinny holds its in-flight weights in registers (102-190 a thread), so
 * an SM keeps few bytes in flight, and none while a warp multiplies; at N = 4096
 * it reached 46% of the copy rate at 16 rows on an H200. Here a block's 16 (or 32)
 * weight rows are contiguous in memory, and its thread 0 copies them a K slab at
 * a time (one bulk copy a row, 8 x vecs chunks of 32 columns each) into a ring of
 * `stages` slabs; the first slabs are requested before pdl_wait. The copies hold
 * no registers, so the ring's bytes stay in flight while the warps multiply.
 *
 * Bits: exactly gemm_skinny's. Warp w still takes chunks w, w + 8, ... in
 * ascending order (a slab holds chunks [8 vecs s, 8 vecs (s + 1)), and warp w's
 * are w + 8u of them), lane (g, t) the same 16 bytes of weight rows g and g + 8
 * and of X row g, zero past K, the same two mma a chunk, then warp 0 adds the other
 * warps' sums in the order 1..7 and the epilogue rounds the same way. */
#include "bulk_copy.cuh"
#include "cuda_check.h"
#include "gemm.h"
#include "pdl.h"

typedef __nv_bfloat16 bf16;

#define SB_WARPS 8  /* gemm_skinny's SK_WARPS: the K split that sets the order of the sums */
#define SB_MAX_STAGES 8
#define SB_MAX_SMEM (226 * 1024)
#define SB_PAD 64  /* bytes after each row of a slab: lanes g and g + 1 of a quarter-warp hit other banks */

static struct skinny_stream_cfg g_cfg = {0, 4, 2, 0};

void gemm_skinny_set_stream(struct skinny_stream_cfg c) { g_cfg = c; }
struct skinny_stream_cfg gemm_skinny_stream(void) { return g_cfg; }

__device__ __forceinline__ void sb_mma(float d[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* NT row tiles of 8 rows of X, MT column tiles of 16 weight rows (SWIGLU: MT = 2,
 * tile 0 gate rows, tile 1 the matching up rows), as skinny_kernel has them. */
template <int NT, int MT, bool SWIGLU>
__global__ void __launch_bounds__(SB_WARPS * 32)
skinny_bulk_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y, int m, int n, int k,
                   int accumulate, int stages, int vecs)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t full[SB_MAX_STAGES], empty[SB_MAX_STAGES];
    __shared__ float red[SB_WARPS - 1][NT * 4][32];
    constexpr int R = 16 * MT;  /* weight rows a block */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int col0 = blockIdx.x * 16 * (SWIGLU ? 1 : MT);
    const int row0 = blockIdx.y * 8 * NT;
    const int kv = k / 8, chunks = (kv + 3) / 4;
    const int slab_chunks = SB_WARPS * vecs, slab_vecs = 4 * slab_chunks;
    const int slabs = (chunks + slab_chunks - 1) / slab_chunks;
    const int row_stride = slab_vecs * 16 + SB_PAD;  /* bytes */
    const int stage_bytes = R * row_stride;
    auto wrow = [&](int r) {  /* weight row r of the block (clamped: rows past n are read, never stored) */
        const int q = r / 16, c = min(col0 + (SWIGLU ? 0 : q * 16) + (r % 16), n - 1);
        return (const uint4 *)(w + (size_t)(SWIGLU ? q * n + c : c) * k);
    };
    auto issue = [&](int sl, int st) {  /* thread 0: slab sl of every row into stage st */
        const int v0 = sl * slab_vecs, nv = min(slab_vecs, kv - v0);
        mbar_expect_tx(full + st, (uint32_t)(nv * 16 * R));
        unsigned char *dst = smem_raw + (size_t)st * stage_bytes;
        for (int r = 0; r < R; r++) bulk_load(dst + r * row_stride, wrow(r) + v0, (uint32_t)(nv * 16), full + st);
    };
    if (threadIdx.x == 0) {
        for (int s = 0; s < stages; s++) {
            mbar_init(full + s);
            mbar_init_count(empty + s, SB_WARPS);
        }
        mbar_init_fence();
        for (int s = 0; s < min(stages, slabs); s++) issue(s, s);  /* weights: before pdl_wait */
    }
    __syncthreads();
    pdl_wait();
    pdl_trigger();
    const uint4 *xp[NT];
#pragma unroll
    for (int i = 0; i < NT; i++) xp[i] = (const uint4 *)(x + (size_t)min(row0 + i * 8 + g, m - 1) * k);
    float acc[MT][NT][4];
#pragma unroll
    for (int q = 0; q < MT; q++)
#pragma unroll
        for (int i = 0; i < NT; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[q][i][j] = 0.0f;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    int st = 0;
    uint32_t phase = 0;
    for (int sl = 0; sl < slabs; sl++) {
        mbar_wait(full + st, phase);
        const unsigned char *base = smem_raw + (size_t)st * stage_bytes;
        for (int u = 0; u < vecs; u++) {
            const int c = sl * slab_chunks + warp + SB_WARPS * u;
            if (c >= chunks) break;  /* uniform over the warp: mma needs every lane */
            const int idx = c * 4 + t;
            const int sv = (warp + SB_WARPS * u) * 4 + t;  /* the vector within the slab row */
            uint4 a[MT][2];
#pragma unroll
            for (int q = 0; q < MT; q++)
#pragma unroll
                for (int h = 0; h < 2; h++)
                    a[q][h] = idx < kv ? *(const uint4 *)(base + (q * 16 + g + 8 * h) * row_stride + sv * 16) : zero;
#pragma unroll
            for (int i = 0; i < NT; i++) {
                const uint4 b = idx < kv ? __ldg(xp[i] + idx) : zero;
#pragma unroll
                for (int q = 0; q < MT; q++) {
                    sb_mma(acc[q][i], a[q][0].x, a[q][1].x, a[q][0].y, a[q][1].y, b.x, b.y);
                    sb_mma(acc[q][i], a[q][0].z, a[q][1].z, a[q][0].w, a[q][1].w, b.z, b.w);
                }
            }
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(empty + st);  /* this warp is done with the slab */
        if (threadIdx.x == 0 && sl + stages < slabs) {
            mbar_wait(empty + st, phase);  /* every warp is: refill it */
            issue(sl + stages, st);
        }
        if (++st == stages) st = 0, phase ^= 1;
    }
    /* gemm_skinny's reduction and epilogue */
#pragma unroll
    for (int q = 0; q < MT; q++) {
        if (warp)
#pragma unroll
            for (int i = 0; i < NT; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) red[warp - 1][i * 4 + j][lane] = acc[q][i][j];
        __syncthreads();
        if (!warp)
            for (int v = 0; v < SB_WARPS - 1; v++)
#pragma unroll
                for (int i = 0; i < NT; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) acc[q][i][j] += red[v][i * 4 + j][lane];
        __syncthreads();
    }
    if (warp) return;
#pragma unroll
    for (int i = 0; i < NT; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int row = row0 + i * 8 + 2 * t + (j & 1);
            if (row >= m) continue;
            if (SWIGLU) {
                int col = col0 + g + 8 * (j >> 1);
                if (col >= n) continue;
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

template <int NT, int MT, bool SWIGLU>
static int sb_launch(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s,
                     int pdl)
{
    const struct skinny_stream_cfg c = g_cfg;
    if (c.stages < 1 || c.stages > SB_MAX_STAGES || c.vecs < 1 || c.vecs > 16)
        return pb_fail("gemm_skinny bulk: %d stages of %d chunks a warp (1-%d, 1-16)", c.stages, c.vecs, SB_MAX_STAGES);
    const size_t smem = (size_t)c.stages * 16 * MT * (SB_WARPS * c.vecs * 4 * 16 + SB_PAD);
    if (smem > SB_MAX_SMEM) return pb_fail("gemm_skinny bulk: %zu bytes of shared memory a block", smem);
    /* per device, the dynamic shared-memory limit this kernel was raised to (the
     * opt-in maximum less its static memory is the most it can take) */
    static int raised[64];
    int dev = 0;
    cudaCheck(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 64) return pb_fail("%s: device %d", __func__, dev);
    if ((int)smem > raised[dev]) {
        cudaCheck(cudaFuncSetAttribute(skinny_bulk_kernel<NT, MT, SWIGLU>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        /* all of the SM's unified memory as shared memory, or a second block
         * (or the next kernel's, under programmatic launch) may not fit */
        cudaCheck(cudaFuncSetAttribute(skinny_bulk_kernel<NT, MT, SWIGLU>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       cudaSharedmemCarveoutMaxShared));
        raised[dev] = (int)smem;
    }
    int cols = 16 * (SWIGLU ? 1 : MT);
    dim3 grid((n + cols - 1) / cols, (m + 8 * NT - 1) / (8 * NT));
    cudaCheck(pdl_launch(skinny_bulk_kernel<NT, MT, SWIGLU>, grid, dim3(SB_WARPS * 32), smem, s, pdl, x, w, y, m, n,
                         k, accumulate, c.stages, c.vecs));
    return PB_OK;
}

/* gemm_skinny's row tiles by the row count */
template <int MT, bool SWIGLU>
static int sb_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s, int pdl)
{
    if (m <= 8) return sb_launch<1, MT, SWIGLU>(x, w, y, m, n, k, accumulate, s, pdl);
    if (m <= 16) return sb_launch<2, MT, SWIGLU>(x, w, y, m, n, k, accumulate, s, pdl);
    if (m <= 32) return sb_launch<4, MT, SWIGLU>(x, w, y, m, n, k, accumulate, s, pdl);
    return sb_launch<8, MT, SWIGLU>(x, w, y, m, n, k, accumulate, s, pdl);
}

int gemm_skinny_bulk(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int mt, int swiglu,
                     cudaStream_t s, int pdl)
{
    if (k % 8) return pb_fail("gemm_skinny: K=%d is not a multiple of 8", k);
    if (m <= 0 || n <= 0) return PB_OK;
    if (swiglu) return sb_rows<2, true>(x, w, y, m, n, k, 0, s, pdl);
    if (mt == 2) return sb_rows<2, false>(x, w, y, m, n, k, accumulate, s, pdl);
    return sb_rows<1, false>(x, w, y, m, n, k, accumulate, s, pdl);
}

/* Decode linear layers on Hopper's own path: Y[M, N] = X[M, K] W[N, K]^T for up to
 * 128 rows, the weights streamed by TMA into a ring of shared-memory stages and
 * multiplied by wgmma straight from shared memory; see gemm.h.
 *
 * Why another kernel: the mma.sync kernels (gemm_skinny, gemm_stream) move every
 * weight through registers and stream 19-59% of the copy rate at 16-64 rows, and
 * cuBLASLt's tiles give N = 4096 64 blocks for 132 SMs (o 55%, down 69% of copy at
 * 16 rows, H200: docs/PERF.md). Here one producer warp keeps up to ~200 KB of
 * copies in flight per SM and four consumer warps (one warpgroup) only issue
 * wgmma, with no loads of their own; the blocks are persistent and the producer
 * runs on into a block's next unit while the consumers finish the last, so the
 * ring never drains between units. On an H100 that streams o and down at 93-100%
 * of the copy rate at 8-16 rows, in K slices (docs/PERF.md).
 *
 * Consumers (gemm_tma_set_consumers): one warpgroup waiting on each stage's wgmma
 * by default; two, each taking half of X's rows, and one wgmma group left in flight
 * are there for 64-128 rows, where one warpgroup fell behind cuBLASLt on qkv and
 * gate-up (H100, docs/PERF.md), and await a GPU's measurement.
 *
 * Work: a unit is BN weight rows (one or two m64 tiles of wgmma, whose N is the
 * rows of X, R = 8 to 128) over one of ks slices of K; the grid is min(units, SMs)
 * blocks, block b taking units b, b + grid, ... With ks = 1 a unit writes Y (plus
 * Y when accumulating, rounded once, as cuBLASLt's beta = 1); with ks > 1 it
 * writes its slice's fp32 sums to part[slice][prow][N], the decode class's
 * partials layout, for k_add_partials or k_add_rmsnorm to add in slice order.
 *
 * Bits. An output is wgmma's sum over each k16 step, the steps in ascending K
 * within the slice, then the slices in order. That depends on K and ks only, not
 * on the rows sharing the call, nor on R (the test checks both), nor on the grid.
 *
 * Programmatic launch: the producer requests the first ring's weight tiles before
 * pdl_wait (no kernel writes weights) and the rows of X after it. */
#include <cudaTypedefs.h>
#include "gemm.h"
#include "cuda_check.h"
#include "hopper.cuh"
#include "pdl.h"

typedef __nv_bfloat16 bf16;

#define TMA_BK GEMM_TMA_BK             /* K a stage: one 128-byte swizzled row of bf16 */
#define TMA_RING_MAX (200 * 1024)      /* the most shared memory a ring takes: one block an SM */
#define TMA_MAX_STAGES 32
#define TMA_THREADS(cw) (128 * (cw) + 32)  /* cw consumer warpgroups and the producer warp */

template <int BN, int R> struct tma_layout {
    static constexpr int a_bytes = BN * TMA_BK * 2;
    static constexpr int b_bytes = R * TMA_BK * 2;
    static constexpr int stage_bytes = a_bytes + b_bytes;   /* a multiple of 1024: every tile stays aligned */
    static constexpr int max_stages = TMA_RING_MAX / stage_bytes < TMA_MAX_STAGES ? TMA_RING_MAX / stage_bytes
                                                                                  : TMA_MAX_STAGES;
    /* the stages of a ring of `ring` bytes (gemm_tma_set_ring), at least two */
    static int stages(int ring)
    {
        int s = ring / stage_bytes;
        return s < 2 ? 2 : s > max_stages ? max_stages : s;
    }
    static size_t bytes(int stages) { return (size_t)stages * stage_bytes + 1024; }  /* + alignment slack */
};

/* A block's units in order, and each unit's K tiles: the producer and the
 * consumers walk the same sequence. */
struct tma_cursor {
    int unit, units, step, ks, kb, kb_end, kb_all;
    __device__ void enter(void)
    {
        int slice = unit % ks;
        kb = slice * kb_all / ks;
        kb_end = (slice + 1) * kb_all / ks;
    }
    __device__ tma_cursor(int first, int units_, int step_, int ks_, int kb_all_)
        : unit(first), units(units_), step(step_), ks(ks_), kb(0), kb_end(0), kb_all(kb_all_)
    {
        if (unit < units) enter();
    }
    __device__ bool valid(void) const { return unit < units; }
    __device__ int tile(void) const { return unit / ks; }
    __device__ bool last_of_unit(void) const { return kb + 1 == kb_end; }
    __device__ void next(void)
    {
        if (++kb == kb_end) {
            unit += step;
            if (unit < units) enter();
        }
    }
};

template <int R> __device__ __forceinline__ void wgmma_rows(float *d, uint64_t da, uint64_t db, int scale_d)
{
    if (R == 8) wgmma_n8(d, da, db, scale_d);
    if (R == 16) wgmma_n16(d, da, db, scale_d);
    if (R == 32) wgmma_n32(d, da, db, scale_d);
    if (R == 64) wgmma_n64(d, da, db, scale_d);
    if (R == 128) wgmma_n128(d, da, db, scale_d);
}

/* CW consumer warpgroups share each stage: warpgroup g multiplies every weight row
 * of the unit by rows g RW .. g RW + RW - 1 of X (wgmma's N = RW = R / CW), so each
 * keeps its own outputs for the epilogue, and a wgmma's sum for an output does not
 * depend on its N (the bits of CW = 1). INFLIGHT: a warpgroup issues a stage's
 * wgmma before the last stage's complete, and releases that one then (a template
 * argument: ptxas serializes every wgmma when a wait sits on a branch it cannot
 * prove uniform). */
template <int BN, int R, int CW, bool INFLIGHT, bool SWIGLU>
__global__ void __launch_bounds__(TMA_THREADS(CW), 1)
tma_kernel(const __grid_constant__ CUtensorMap tw, const __grid_constant__ CUtensorMap tx, bf16 *__restrict__ y,
           float *__restrict__ part, int m, int n, int k, int accumulate, int ks, int prow, int stages)
{
    typedef tma_layout<BN, R> L;
    constexpr int MT = BN / 64, RW = R / CW;
    static_assert(RW >= 8 && R % CW == 0, "a warpgroup multiplies at least 8 rows of X");
    constexpr int COLS = SWIGLU ? 64 : BN;  /* outputs a unit: SwiGLU's gate tile and up tile give 64 */
    static_assert(!SWIGLU || BN == 128, "SwiGLU takes a gate and an up tile");
    extern __shared__ unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t full[L::max_stages], empty[L::max_stages];
    unsigned char *ring = (unsigned char *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int tiles = (n + COLS - 1) / COLS, units = tiles * ks, kb_all = (k + TMA_BK - 1) / TMA_BK;
    if (threadIdx.x == 0) {
        for (int s = 0; s < stages; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 4 * CW);   /* one arrival a consumer warp */
        }
        mbar_fence_init();
    }
    __syncthreads();

    if (warp == 4 * CW) {  /* the producer */
        if (lane == 0) {
            tma_prefetch_map(&tw);
            tma_prefetch_map(&tx);
            const uint64_t keep = l2_evict_last(), stream = l2_evict_first();
            /* SwiGLU: gate rows c0.. then up rows n + c0.., 64 each */
            auto load_weights = [&](unsigned char *dst, const tma_cursor &c, uint64_t *bar) {
                if (SWIGLU) {
                    tma_load_2d(dst, &tw, c.kb * TMA_BK, c.tile() * 64, bar, stream);
                    tma_load_2d(dst + 64 * TMA_BK * 2, &tw, c.kb * TMA_BK, n + c.tile() * 64, bar, stream);
                } else {
                    tma_load_2d(dst, &tw, c.kb * TMA_BK, c.tile() * BN, bar, stream);
                }
            };
            tma_cursor c(blockIdx.x, units, gridDim.x, ks, kb_all), first = c;
            int filled = 0;
            for (; filled < stages && c.valid(); filled++, c.next()) {  /* weights before the wait */
                mbar_expect_tx(&full[filled], L::stage_bytes);
                load_weights(ring + filled * L::stage_bytes, c, &full[filled]);
            }
            pdl_wait();
            for (int s = 0; s < filled; s++, first.next())
                tma_load_2d(ring + s * L::stage_bytes + L::a_bytes, &tx, first.kb * TMA_BK, 0, &full[s], keep);
            int stage = filled % stages;
            uint32_t phase = filled == stages;
            for (; c.valid(); c.next()) {
                mbar_wait(&empty[stage], phase ^ 1);
                unsigned char *st = ring + stage * L::stage_bytes;
                mbar_expect_tx(&full[stage], L::stage_bytes);
                load_weights(st, c, &full[stage]);
                tma_load_2d(st + L::a_bytes, &tx, c.kb * TMA_BK, 0, &full[stage], keep);
                if (++stage == stages) stage = 0, phase ^= 1;
            }
        } else {
            pdl_wait();
        }
        pdl_trigger();
        return;
    }

    /* the consumers: warp w of warpgroup g holds weight rows 16 w .. 16 w + 15 of each
     * m64 tile, by rows g RW .. of X */
    const int wg = warp / 4, wq = warp % 4;
    pdl_wait();
    pdl_trigger();
    float acc[MT][RW / 2] = {};
    int stage = 0, held = -1;  /* held: the stage whose wgmma may still be reading it */
    uint32_t phase = 0, first_step = 1;
    auto release = [&](int st) {
        if (lane == 0) mbar_arrive(&empty[st]);
        __syncwarp();  /* wgmma is .aligned: the warp whole again */
    };
    for (tma_cursor c(blockIdx.x, units, gridDim.x, ks, kb_all); c.valid();) {
        const int tile = c.tile(), slice = c.unit % ks;
        bool last;
        do {
            mbar_wait(&full[stage], phase);
            const unsigned char *st = ring + stage * L::stage_bytes;
            const uint64_t db = wgmma_desc_sw128(st + L::a_bytes + wg * RW * TMA_BK * 2);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < TMA_BK / 16; kk++)
#pragma unroll
                for (int t = 0; t < MT; t++)
                    wgmma_rows<RW>(acc[t], wgmma_desc_sw128(st + t * 64 * TMA_BK * 2) + 2 * kk, db + 2 * kk,
                                   !(first_step && kk == 0));
            wgmma_commit();
            if (INFLIGHT) {
                wgmma_wait_but_one();
                if (held >= 0) release(held);
                held = stage;
            } else {
                wgmma_wait_all();
                release(stage);
            }
            if (++stage == stages) stage = 0, phase ^= 1;
            first_step = 0;
            last = c.last_of_unit();
            c.next();
        } while (!last);
        if (INFLIGHT) {  /* a unit has at least one stage: held is one */
            wgmma_wait_all();
            release(held);
            held = -1;
        }
#pragma unroll
        for (int t = 0; t < MT; t++) wgmma_fence_operands<RW / 2>(acc[t]);
        first_step = 1;
        /* D's fragment: register 4 j + e holds weight row 16 wq + lane / 4 + 8 (e / 2)
         * of the tile and row 8 j + 2 (lane % 4) + e % 2 of the warpgroup's rows of X */
#pragma unroll
        for (int t = 0; t < (SWIGLU ? 1 : MT); t++)
#pragma unroll
            for (int i = 0; i < RW / 2; i++) {
                const int j = i / 4, e = i % 4;
                const int col = tile * COLS + t * 64 + wq * 16 + lane / 4 + 8 * (e / 2);
                const int row = wg * RW + 8 * j + 2 * (lane % 4) + e % 2;
                if (row >= m || col >= n) continue;
                if (SWIGLU) {
                    /* k_swiglu's arithmetic on the bf16 values a plain product would have stored */
                    float g = __bfloat162float(__float2bfloat16(acc[0][i]));
                    float u = __bfloat162float(__float2bfloat16(acc[1][i]));
                    float silu = __bfloat162float(__float2bfloat16(g / (1.0f + expf(-g))));
                    y[(size_t)row * n + col] = __float2bfloat16(silu * u);
                } else if (ks > 1) {
                    part[((size_t)slice * prow + row) * n + col] = acc[t][i];
                } else {
                    float v = acc[t][i];
                    bf16 *out = y + (size_t)row * n + col;
                    if (accumulate) v += __bfloat162float(*out);
                    *out = __float2bfloat16(v);
                }
            }
    }
}

static int tma_ring = TMA_RING_MAX;
int gemm_tma_set_ring(int bytes)
{
    if (bytes < 16 * 1024 || bytes > TMA_RING_MAX)
        return pb_fail("gemm_tma: a ring of %d bytes (16 KiB to %d)", bytes, TMA_RING_MAX);
    tma_ring = bytes;
    return PB_OK;
}
int gemm_tma_ring(void) { return tma_ring; }

/* One warpgroup waiting on each stage by default, the consumers every GPU run so
 * far measured and tested, until a GPU has run the others (docs/PERF.md). */
static int tma_warpgroups = 1, tma_inflight = 0;
int gemm_tma_set_consumers(int warpgroups, int inflight)
{
    if (warpgroups < 1 || warpgroups > 2 || inflight < 0 || inflight > 1)
        return pb_fail("gemm_tma: %d consumer warpgroups (1 or 2), %d groups in flight (0 or 1)", warpgroups,
                       inflight);
    tma_warpgroups = warpgroups;
    tma_inflight = inflight;
    return PB_OK;
}
void gemm_tma_consumers(int *warpgroups, int *inflight)
{
    *warpgroups = tma_warpgroups;
    *inflight = tma_inflight;
}

static PFN_cuTensorMapEncodeTiled_v12000 tma_encoder(void)
{
    static PFN_cuTensorMapEncodeTiled_v12000 fn;
    if (!fn) {
        cudaDriverEntryPointQueryResult q;
        void *p = NULL;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) ==
                cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            fn = (PFN_cuTensorMapEncodeTiled_v12000)p;
    }
    return fn;
}

/* rows x k bf16, row-major, in boxes of box_rows x TMA_BK with the 128-byte swizzle */
static int tma_map(CUtensorMap *map, const bf16 *p, int rows, int k, int box_rows)
{
    PFN_cuTensorMapEncodeTiled_v12000 encode = tma_encoder();
    if (!encode) return pb_fail("gemm_tma: the driver has no cuTensorMapEncodeTiled");
    cuuint64_t dims[2] = {(cuuint64_t)k, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)k * 2};
    cuuint32_t box[2] = {TMA_BK, (cuuint32_t)box_rows}, estr[2] = {1, 1};
    CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)p, dims, strides, box, estr,
                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) return pb_fail("gemm_tma: cuTensorMapEncodeTiled failed (%d) for %d x %d", (int)r, rows, k);
    return PB_OK;
}

/* The SMs of device dev (0-31), asked once. */
static int tma_sms(int dev)
{
    static int sms[32];
    if (!sms[dev]) cudaCheck(cudaDeviceGetAttribute(&sms[dev], cudaDevAttrMultiProcessorCount, dev));
    return sms[dev];
}

template <int BN, int R, int CW, bool INFLIGHT, bool SWIGLU>
static int tma_launch(const bf16 *x, const bf16 *w, bf16 *y, float *part, int prow, int m, int n, int k,
                      int accumulate, int ks, cudaStream_t s, int pdl)
{
    typedef tma_layout<BN, R> L;
    auto kernel = tma_kernel<BN, R, CW, INFLIGHT, SWIGLU>;
    static unsigned configured;
    int dev;
    cudaCheck(cudaGetDevice(&dev));
    if (dev >= 32) return pb_fail("gemm_tma: device %d (the first 32 only)", dev);
    if (!(configured >> dev & 1u)) {
        cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)L::bytes(L::max_stages)));
        configured |= 1u << dev;
    }
    CUtensorMap tw, tx;
    if (tma_map(&tw, w, SWIGLU ? 2 * n : n, k, SWIGLU ? 64 : BN) || tma_map(&tx, x, m, k, R)) return PB_ERR;
    const int sms = tma_sms(dev);
    if (sms <= 0) return PB_ERR;
    const int cols = SWIGLU ? 64 : BN, units = (n + cols - 1) / cols * ks;
    const int stages = L::stages(tma_ring);
    cudaCheck(pdl_launch(kernel, dim3(units < sms ? units : sms), dim3(TMA_THREADS(CW)), L::bytes(stages), s, pdl, tw,
                         tx, y, part, m, n, k, accumulate, ks, prow, stages));
    return PB_OK;
}

template <int BN, int R, bool SWIGLU>
static int tma_consumers(const bf16 *x, const bf16 *w, bf16 *y, float *part, int prow, int m, int n, int k,
                         int accumulate, int ks, cudaStream_t s, int pdl)
{
    constexpr int TWO = R >= 16 ? 2 : 1;  /* a warpgroup's wgmma takes at least 8 rows */
#define TMA_LAUNCH(CW, INF) tma_launch<BN, R, CW, INF, SWIGLU>(x, w, y, part, prow, m, n, k, accumulate, ks, s, pdl)
    if (TWO == 2 && tma_warpgroups == 2) return tma_inflight ? TMA_LAUNCH(TWO, true) : TMA_LAUNCH(TWO, false);
    return tma_inflight ? TMA_LAUNCH(1, true) : TMA_LAUNCH(1, false);
#undef TMA_LAUNCH
}

template <int BN, bool SWIGLU>
static int tma_rows(const bf16 *x, const bf16 *w, bf16 *y, float *part, int prow, int m, int n, int k, int accumulate,
                    int ks, int r, cudaStream_t s, int pdl)
{
    switch (r) {
    case 8: return tma_consumers<BN, 8, SWIGLU>(x, w, y, part, prow, m, n, k, accumulate, ks, s, pdl);
    case 16: return tma_consumers<BN, 16, SWIGLU>(x, w, y, part, prow, m, n, k, accumulate, ks, s, pdl);
    case 32: return tma_consumers<BN, 32, SWIGLU>(x, w, y, part, prow, m, n, k, accumulate, ks, s, pdl);
    case 64: return tma_consumers<BN, 64, SWIGLU>(x, w, y, part, prow, m, n, k, accumulate, ks, s, pdl);
    case 128: return tma_consumers<BN, 128, SWIGLU>(x, w, y, part, prow, m, n, k, accumulate, ks, s, pdl);
    default: return pb_fail("gemm_tma: a row tile of %d (8, 16, 32, 64 or 128)", r);
    }
}

static int tma_check(const bf16 *x, const bf16 *w, int m, int k, int row_tile, int *r)
{
    if (k % 8) return pb_fail("gemm_tma: K=%d is not a multiple of 8", k);
    if (((uintptr_t)x | (uintptr_t)w) % 16) return pb_fail("gemm_tma: X and W must be 16-byte aligned");
    if (m > 128) return pb_fail("gemm_tma: %d rows (at most 128)", m);
    *r = row_tile ? row_tile : m <= 8 ? 8 : m <= 16 ? 16 : m <= 32 ? 32 : m <= 64 ? 64 : 128;
    if (*r < m) return pb_fail("gemm_tma: a row tile of %d for %d rows", *r, m);
    return PB_OK;
}

int gemm_tma_cfg(const bf16 *x, const bf16 *w, bf16 *y, float *part, int prow, int m, int n, int k, int accumulate,
                 int ks, int bn, int row_tile, cudaStream_t s, int pdl)
{
    int r = 0;
    if (tma_check(x, w, m, k, row_tile, &r)) return PB_ERR;
    if (bn != 64 && bn != 128) return pb_fail("gemm_tma: %d weight rows a unit (64 or 128)", bn);
    const int kb_all = (k + TMA_BK - 1) / TMA_BK;
    if (ks < 1 || ks > kb_all) return pb_fail("gemm_tma: %d K slices for %d K tiles", ks, kb_all);
    if (ks > 1 && (!part || m > prow)) return pb_fail("gemm_tma: %d K slices need partials of at least %d rows", ks, m);
    if (m <= 0 || n <= 0) return PB_OK;
    if (bn == 128) return tma_rows<128, false>(x, w, y, part, prow, m, n, k, accumulate, ks, r, s, pdl);
    return tma_rows<64, false>(x, w, y, part, prow, m, n, k, accumulate, ks, r, s, pdl);
}

int gemm_tma_swiglu(const bf16 *x, const bf16 *w_gate_up, bf16 *act, int m, int inter, int k, int row_tile,
                    cudaStream_t s, int pdl)
{
    int r = 0;
    if (tma_check(x, w_gate_up, m, k, row_tile, &r)) return PB_ERR;
    if (m <= 0 || inter <= 0) return PB_OK;
    return tma_rows<128, true>(x, w_gate_up, act, NULL, 0, m, inter, k, 0, 1, r, s, pdl);
}

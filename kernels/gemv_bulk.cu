/* The GEMV of one-token steps with its weights streamed by the copy engine of
 * each SM (cp.async.bulk into shared memory, completion on an mbarrier) instead
 * of through registers. See gemm.h (gemm_rows_set_stream) and docs/PERF.md.
 *
 * Why: the register GEMV (gemm.cu) holds each lane's loads in registers, so the
 * bytes an SM has in flight are bounded by its registers and fall to nothing
 * while a warp does its arithmetic; at N = 4096 (o, down) its one short wave of
 * blocks reached 69-78% of the copy rate on an H200. Here each warp owns a ring
 * of `stages` buffers in shared memory, refilled by one lane with a single bulk
 * copy as soon as the warp has read it, so stages x the buffer's bytes stay in
 * flight per warp, whatever the warp is doing; and the first `stages` buffers are
 * requested before pdl_wait, while the kernel ahead (attention, a norm) ends.
 *
 * The bits are gemm_rows' bits: a warp takes whole output columns (weight rows,
 * or a gate and an up row for SwiGLU) one after the other, lane l sums vectors
 * l, l + 32, ... of the row in ascending order with the same fmaf chain, then the
 * same shuffle tree and epilogue. Where a warp's run of rows crosses a buffer
 * boundary does not matter, since a buffer holds whole 32-vector steps and K is
 * a multiple of 256 (a row is whole steps). The columns are spread evenly over
 * gridDim.x x 8 warps, each warp a contiguous run, so one bulk copy a buffer
 * covers the run's bytes whatever the row boundaries. */
#include "cuda_check.h"
#include "gemm.h"
#include "bulk_copy.cuh"
#include "gemv_bulk.h"
#include "pdl.h"
#include "row_norm.cuh"

typedef __nv_bfloat16 bf16;

#define GB_WARPS 8           /* 256 threads: row_inv_rms's partition, as k_rmsnorm has it */
#define GB_MAX_STAGES 8
#define GB_MAX_SMEM (226 * 1024)  /* dynamic: the opt-in 227 KB less the static barriers */

static struct gemv_stream_cfg g_cfg = {GEMV_STREAM_REGISTERS, 4, 4, 1};

void gemm_rows_set_stream(struct gemv_stream_cfg c) { g_cfg = c; }
struct gemv_stream_cfg gemm_rows_stream(void) { return g_cfg; }

int gemv_bulk_fits(int m, int k) { return g_cfg.mode == GEMV_STREAM_BULK && m >= 1 && m <= 8 && k % 256 == 0; }

/* P weight streams (1 plain, 2 gate and up), ROWS rows of x. */
template <int ROWS, int P, bool NORM>
__global__ void __launch_bounds__(GB_WARPS * 32)
gemv_bulk_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y, int m, int n, int k,
                 int accumulate, const bf16 *__restrict__ norm_w, float eps, int stages, int vecs)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t bars[GB_WARPS][GB_MAX_STAGES];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int kv = k / 8;                        /* 16-byte vectors a weight row */
    const int stage_vecs = 32 * vecs;            /* vectors a buffer, a stream */
    const long long T = (long long)gridDim.x * GB_WARPS, t = (long long)blockIdx.x * GB_WARPS + warp;
    const int u0 = (int)(n * t / T), u1 = (int)(n * (t + 1) / T);  /* my output columns */
    const long long total = (long long)(u1 - u0) * kv;             /* vectors a stream */
    const int chunks = (int)((total + stage_vecs - 1) / stage_vecs);
    uint4 *ring = (uint4 *)smem_raw + (size_t)warp * stages * P * stage_vecs;
    uint64_t *bar = bars[warp];
    const uint4 *src[P];
#pragma unroll
    for (int q = 0; q < P; q++) src[q] = (const uint4 *)(w + ((size_t)q * n + u0) * k);
    /* buffer c % stages gets chunk c: all P streams' vectors [c, c + 1) x stage_vecs */
    auto issue = [&](int c, int st) {
        const long long v0 = (long long)c * stage_vecs;
        const uint32_t bytes = (uint32_t)(min((long long)stage_vecs, total - v0) * 16);
        mbar_expect_tx(bar + st, bytes * P);
#pragma unroll
        for (int q = 0; q < P; q++) bulk_load(ring + (size_t)(st * P + q) * stage_vecs, src[q] + v0, bytes, bar + st);
    };
    if (lane == 0) {
        for (int s = 0; s < stages; s++) mbar_init(bar + s);
        mbar_init_fence();
        for (int c = 0; c < min(stages, chunks); c++) issue(c, c);
    }
    __syncwarp();
    pdl_wait();
    pdl_trigger();
    const uint4 *xr[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) xr[r] = (const uint4 *)(x + (size_t)min(r, m - 1) * k);
    const uint4 *nw = (const uint4 *)norm_w;
    float inv[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) inv[r] = 1.0f;
    if (NORM) {  /* the whole block, before any warp leaves */
        static_assert(GB_WARPS * 32 == NORM_THREADS, "k_rmsnorm's partition of the row");
        __shared__ float red[32];
#pragma unroll
        for (int r = 0; r < ROWS; r++) inv[r] = row_inv_rms(xr[r], k, eps, red);
    }
    float acc[P][ROWS];
#pragma unroll
    for (int q = 0; q < P; q++)
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc[q][r] = 0.0f;
    int col = u0, vin = 0;  /* the column and the vector of its row this step starts at */
    int c = 0, j = 0;       /* chunk and vector within it */
    int st = 0;             /* c % stages */
    uint32_t phase = 0;     /* (c / stages) & 1: the use of buffer st this is */
    for (long long f = 0; f < total; f += 32) {
        if (j == 0) mbar_wait(bar + st, phase);
        float wf[P][8];
#pragma unroll
        for (int q = 0; q < P; q++) norm_unpack8(ring[(size_t)(st * P + q) * stage_vecs + j + lane], wf[q]);
        const int v = vin + lane;
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            float xf[8];
            uint4 xv = __ldg(xr[r] + v);
            if (NORM) xv = norm_apply8(xv, __ldg(nw + v), inv[r]);
            norm_unpack8(xv, xf);
#pragma unroll
            for (int q = 0; q < P; q++)
#pragma unroll
                for (int e = 0; e < 8; e++) acc[q][r] = fmaf(wf[q][e], xf[e], acc[q][r]);
        }
        j += 32;
        if (j == stage_vecs || f + 32 >= total) {  /* buffer read: refill it with chunk c + stages */
            __syncwarp();
            if (lane == 0 && c + stages < chunks) issue(c + stages, st);
            c++;
            j = 0;
            if (++st == stages) st = 0, phase ^= 1;
        }
        vin += 32;
        if (vin == kv) {  /* column done: gemm_rows' reduction and epilogue */
#pragma unroll
            for (int q = 0; q < P; q++)
#pragma unroll
                for (int r = 0; r < ROWS; r++) {
#pragma unroll
                    for (int off = 16; off > 0; off >>= 1)
                        acc[q][r] += __shfl_xor_sync(0xffffffffu, acc[q][r], off);
                }
            if (lane == 0) {
#pragma unroll
                for (int r = 0; r < ROWS; r++) {
                    if (r >= m) break;
                    bf16 *out = y + (size_t)r * n + col;
                    if (P == 2) {
                        float g = __bfloat162float(__float2bfloat16(acc[0][r]));
                        float u = __bfloat162float(__float2bfloat16(acc[P - 1][r]));
                        float silu = __bfloat162float(__float2bfloat16(g / (1.0f + expf(-g))));
                        *out = __float2bfloat16(silu * u);
                    } else {
                        float val = acc[0][r];
                        if (accumulate) val += __bfloat162float(*out);
                        *out = __float2bfloat16(val);
                    }
                }
            }
#pragma unroll
            for (int q = 0; q < P; q++)
#pragma unroll
                for (int r = 0; r < ROWS; r++) acc[q][r] = 0.0f;
            col++;
            vin = 0;
        }
    }
}

/* SMs of the current device, read once per device (the launch is under capture
 * in a decode graph, and the count never changes). */
static int sm_count(int dev, int *sms)
{
    static int counts[64];
    if (dev < 0 || dev >= 64) return pb_fail("gemv_bulk: device %d", dev);
    if (!counts[dev]) cudaCheck(cudaDeviceGetAttribute(&counts[dev], cudaDevAttrMultiProcessorCount, dev));
    *sms = counts[dev];
    return PB_OK;
}

template <int ROWS, int P, bool NORM>
static int bulk_launch(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate,
                       const bf16 *norm_w, float eps, cudaStream_t s, int pdl)
{
    const struct gemv_stream_cfg c = g_cfg;
    if (c.stages < 1 || c.stages > GB_MAX_STAGES || c.vecs < 1 || c.vecs > 16 || c.blocks_per_sm < 1)
        return pb_fail("gemv_bulk: %d stages of %d vectors a lane, %d blocks an SM (1-%d, 1-16, >= 1)", c.stages,
                       c.vecs, c.blocks_per_sm, GB_MAX_STAGES);
    const size_t smem = (size_t)GB_WARPS * c.stages * P * 32 * c.vecs * 16;
    if (smem > GB_MAX_SMEM) return pb_fail("gemv_bulk: %zu bytes of shared memory a block", smem);
    /* per device, the dynamic shared-memory limit this kernel was raised to (the
     * opt-in maximum less its static memory is the most it can take) */
    static int raised[64];
    int dev = 0;
    cudaCheck(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 64) return pb_fail("%s: device %d", __func__, dev);
    if ((int)smem > raised[dev]) {
        cudaCheck(cudaFuncSetAttribute(gemv_bulk_kernel<ROWS, P, NORM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        /* all of the SM's unified memory as shared memory, or a second block
         * (or the next kernel's, under programmatic launch) may not fit */
        cudaCheck(cudaFuncSetAttribute(gemv_bulk_kernel<ROWS, P, NORM>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       cudaSharedmemCarveoutMaxShared));
        raised[dev] = (int)smem;
    }
    int sms = 0;
    PB_TRY(sm_count(dev, &sms));
    const long long want = (long long)sms * c.blocks_per_sm, enough = ((long long)n + GB_WARPS - 1) / GB_WARPS;
    const int blocks = (int)(want < enough ? want : enough);  /* at least a column a warp */
    cudaCheck(pdl_launch(gemv_bulk_kernel<ROWS, P, NORM>, dim3(blocks), dim3(GB_WARPS * 32), smem, s, pdl, x, w, y, m,
                         n, k, accumulate, norm_w, eps, c.stages, c.vecs));
    return PB_OK;
}

template <int P, bool NORM>
static int bulk_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate,
                     const bf16 *norm_w, float eps, cudaStream_t s, int pdl)
{
    switch (m == 1 ? 1 : m == 2 ? 2 : m <= 4 ? 4 : 8) {
    case 1: return bulk_launch<1, P, NORM>(x, w, y, m, n, k, accumulate, norm_w, eps, s, pdl);
    case 2: return bulk_launch<2, P, NORM>(x, w, y, m, n, k, accumulate, norm_w, eps, s, pdl);
    case 4: return bulk_launch<4, P, NORM>(x, w, y, m, n, k, accumulate, norm_w, eps, s, pdl);
    default:
        if (NORM) return pb_fail("gemv_bulk: a folded norm takes at most 4 rows (%d given)", m);
        return bulk_launch<8, P, false>(x, w, y, m, n, k, accumulate, norm_w, eps, s, pdl);
    }
}

int gemv_bulk(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int swiglu,
              const bf16 *norm_w, float eps, cudaStream_t s, int pdl)
{
    if (!gemv_bulk_fits(m, k)) return pb_fail("gemv_bulk: %d rows, K=%d (1-8 rows, K a multiple of 256)", m, k);
    if (n <= 0) return PB_OK;
    if (swiglu)
        return norm_w ? bulk_rows<2, true>(x, w, y, m, n, k, 0, norm_w, eps, s, pdl)
                      : bulk_rows<2, false>(x, w, y, m, n, k, 0, NULL, 0, s, pdl);
    return norm_w ? bulk_rows<1, true>(x, w, y, m, n, k, accumulate, norm_w, eps, s, pdl)
                  : bulk_rows<1, false>(x, w, y, m, n, k, accumulate, NULL, 0, s, pdl);
}

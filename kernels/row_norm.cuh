/* RMSNorm arithmetic shared by k_rmsnorm and the GEMV that folds the norm into its
 * prologue (gemm_rows.cu). Both include this one definition so the sum of squares runs
 * in the same order and rounds the same way: the folded GEMV then sees exactly the
 * bf16 values k_rmsnorm would have written. Blocks of 256 threads. */
#ifndef PB_ROW_NORM_CUH
#define PB_ROW_NORM_CUH
#include <cuda_bf16.h>

#define NORM_THREADS 256

__device__ __forceinline__ void norm_unpack8(uint4 v, float f[8])
{
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&v;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

__device__ __forceinline__ uint4 norm_pack8(const float f[8])
{
    uint4 v;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&v;
#pragma unroll
    for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return v;
}

/* Sum over the block in a fixed order (warp tree, then warp 0 over the warps). */
static __device__ __forceinline__ float block_sum(float v, float *shared)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? shared[lane] : 0.0f;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) shared[0] = v;
    }
    __syncthreads();
    float total = shared[0];
    __syncthreads();  /* shared[] may be reused by the next call */
    return total;
}

/* ss plus the squares of eight values, in order: a thread's share of a row's sum of
 * squares, its chunks taken in ascending order. */
static __device__ __forceinline__ float norm_ss8(uint4 v, float ss)
{
    float f[8];
    norm_unpack8(v, f);
#pragma unroll
    for (int j = 0; j < 8; j++) ss = fmaf(f[j], f[j], ss);
    return ss;
}

/* 1 / rms from the threads' shares of the sum of squares. */
static __device__ __forceinline__ float norm_inv_rms(float ss, int hidden, float eps, float *shared)
{
    return rsqrtf(block_sum(ss, shared) / hidden + eps);
}

/* 1 / rms of one row of `hidden` bf16 values (8 per uint4), over the block. */
static __device__ __forceinline__ float row_inv_rms(const uint4 *xr, int hidden, float eps, float *shared)
{
    float ss = 0.0f;
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) ss = norm_ss8(xr[i], ss);
    return norm_inv_rms(ss, hidden, eps, shared);
}

/* Eight normed values as transformers rounds them: bf16(bf16(x * inv) * w). */
static __device__ __forceinline__ uint4 norm_apply8(uint4 x, uint4 w, float inv)
{
    float f[8], g[8];
    norm_unpack8(x, f);
    norm_unpack8(w, g);
#pragma unroll
    for (int j = 0; j < 8; j++) f[j] = __bfloat162float(__float2bfloat16(f[j] * inv)) * g[j];
    return norm_pack8(f);
}

/* y = rmsnorm(x) * w for one row over a block of NORM_THREADS, x read through L2
 * (ld.global.cg): rows that other blocks of the same grid have just written, whose
 * lines this block's L1 may hold from before. The sums, their order and the
 * roundings are k_rmsnorm's (thread i takes chunks i, i + blockDim, ...), so the
 * bits are too. */
static __device__ __forceinline__ void norm_row_through_l2(const uint4 *xr, const uint4 *wr, uint4 *yr, int hidden,
                                                           float eps, float *shared)
{
    float ss = 0.0f;
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) ss = norm_ss8(__ldcg(xr + i), ss);
    const float inv = norm_inv_rms(ss, hidden, eps, shared);
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) yr[i] = norm_apply8(__ldcg(xr + i), wr[i], inv);
}
#endif

/* The GEMV's warps a block, modes, and the end of a column: the warp's sum and
 * the store (gemm.cu). */
#ifndef PB_GEMV_COMMON_CUH
#define PB_GEMV_COMMON_CUH
#include <cuda_bf16.h>

#define GEMV_WARPS 8

enum gemv_mode { GEMV_PLAIN, GEMV_PAIR, GEMV_SWIGLU };

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
__device__ __forceinline__ void gemv_store(const float acc[P][ROWS], __nv_bfloat16 *__restrict__ y, int m0, int m,
                                           int n, int col, int accumulate)
{
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        if (m0 + r >= m) break;
        __nv_bfloat16 *out = y + (size_t)(m0 + r) * n + col;
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
#endif

/* Rotary-embedding arithmetic shared by the rope kernel (layer_kernels.cu) and the
 * decode attention kernel that ropes its own query and new key (attention.cu): one
 * definition, so a key the decode kernel writes into the cache has the bits the
 * rope kernel would have written. The rounding follows transformers in bf16: cos
 * and sin rounded to bf16, each product rounded, then the sum. */
#ifndef PB_ROPE_CUH
#define PB_ROPE_CUH
#include <cuda_bf16.h>

__device__ __forceinline__ float bf16r(float x) { return __bfloat162float(__float2bfloat16(x)); }

/* cos and sin of the angle pos * inv_freq (fp32 angle, as transformers), in bf16. */
__device__ __forceinline__ void rope_cos_sin(int pos, float inv_freq, float *cs, float *sn)
{
    sincosf((float)pos * inv_freq, sn, cs);
    *cs = bf16r(*cs);
    *sn = bf16r(*sn);
}

/* The pair (x1, x2) = (x[i], x[i + hd/2]) rotated (rotate_half convention of
 * transformers' Llama); the caller rounds o1 and o2 to bf16. */
__device__ __forceinline__ void rope_rotate(float x1, float x2, float cs, float sn, float *o1, float *o2)
{
    *o1 = bf16r(x1 * cs) + bf16r(-x2 * sn);
    *o2 = bf16r(x2 * cs) + bf16r(x1 * sn);
}
#endif

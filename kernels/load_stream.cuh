/* Loads of weights that a kernel reads once per step: kept out of L1 so the
 * activations it reads again and again stay there. */
#ifndef PB_LOAD_STREAM_CUH
#define PB_LOAD_STREAM_CUH
#include <cuda_runtime.h>

/* The compiler may move this load (the GEMV's main loop leaves its scheduling
 * to it). */
__device__ __forceinline__ uint4 load_stream(const uint4 *p)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

/* The same load issued where it is written: one placed before pdl_wait (itself a
 * volatile asm with a memory clobber) must stay before it, or the weights would
 * not stream while the previous kernel ends. */
__device__ __forceinline__ uint4 load_stream_ordered(const uint4 *p)
{
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

/* Ask L2 for `bytes` of global memory from p (16-byte aligned, a multiple of 16)
 * in one instruction, with no register or completion to wait on (sm_90's bulk
 * prefetch; elsewhere nothing). */
__device__ __forceinline__ void prefetch_l2_bulk(const void *p, unsigned bytes)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#endif
}

#endif

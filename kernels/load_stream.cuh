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

#endif

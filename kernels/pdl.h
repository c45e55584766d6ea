/* Programmatic dependent launch (Hopper): a kernel launched with pdl_launch may
 * start while the kernel before it on the stream is still running, so its launch
 * and whatever it reads that no earlier kernel writes (weights) overlap the tail
 * of the previous one. Correctness rests on one rule: every kernel launched this
 * way calls pdl_wait() before it reads an activation or writes anything, and
 * every kernel calls it before it can exit (a grid that ended without waiting
 * would let its own dependents overtake its predecessor). pdl_wait returns once
 * all earlier work on the stream has finished and is visible; without the launch
 * attribute (or before sm_90) it returns at once, so the same kernel serves both.
 * A second rule follows when every kernel also calls pdl_trigger() only after its
 * pdl_wait() (ours do; kernels that never trigger, cuBLAS's and NCCL's, let their
 * dependents start when they end): a kernel starts only once the kernel ahead of it
 * has passed its wait, so every kernel before that one has finished. What those
 * wrote (the KV cache of earlier steps, a position advanced last step) may be read
 * before pdl_wait; what the kernel just ahead writes may not. */
#ifndef PB_PDL_H
#define PB_PDL_H
#include <cuda_runtime.h>

__device__ __forceinline__ void pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* Let the next kernel on the stream launch now; it still waits in pdl_wait for
 * this one to finish, so this only moves its launch earlier. */
__device__ __forceinline__ void pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Under stream capture, before a programmatic launch: when the node it will depend
 * on is a kernel whose own incoming edges are all full (a cuBLASLt kernel: it takes
 * no launch attribute, so its edge in is full, and it never triggers, so a
 * programmatic edge out of it fires only when it ends), make that edge fire when
 * all of that kernel's blocks have begun (cudaGraphKernelNodePortLaunchCompletion)
 * instead. The dependent then launches while the library's kernel runs and waits in
 * pdl_wait for it to end and flush, as for an edge out of one of ours, without
 * paying its launch after the end. Both rules of the comment above still hold: the
 * upstream started only after every node before it had ended (its edges in are
 * full), so what the dependent reads before pdl_wait was written by finished
 * kernels. *early is set when the edge was changed: pdl_launch then launches without
 * the attribute, so the capture keeps the edge as set. On by default, for the
 * process; off (PDL_EARLY_OFF) leaves every edge as the launch attribute makes it
 * (the benchmark compares). Returns the runtime's error. */
enum pdl_early { PDL_EARLY_OFF = 0, PDL_EARLY_ON = 1 };
void pdl_set_early(int mode);
int pdl_early(void);
cudaError_t pdl_capture_early(cudaStream_t s, int *early);
/* Under capture, after a library call: the node it left last keeps the edge the
 * next launch's attribute gives it (gemm_lt's long class, whose many-wave kernels
 * measured no faster with early edges and 0.6-0.8% slower over a prefill). */
cudaError_t pdl_capture_keep(cudaStream_t s);

/* kernel<<<grid, block, smem, s>>>(args...), with the programmatic-serialisation
 * attribute when pdl is set; returns the launch's error. Off by default
 * (llama_part_desc.programmatic_launch): a captured graph then holds programmatic
 * edges, and graph introspection that asks for dependencies without their edge
 * data (cudaStreamGetCaptureInfo or cudaGraphNodeGetDependencies with NULL edge
 * data) fails with cudaErrorLossyQuery. */
template <typename... P, typename... A>
static inline cudaError_t pdl_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, int pdl,
                                     A... args)
{
    int early = 0;
    if (pdl) {
        cudaError_t e = pdl_capture_early(s, &early);
        if (e != cudaSuccess) return e;
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl && !early ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, ((P)args)...);
}
#endif

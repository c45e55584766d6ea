/* test_gpu on a machine without a usable GPU: say so and stop before any test
 * touches CUDA, with the runner's closing line, instead of failing test by test. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void require_gpu(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n > 0) return;
    printf("test_gpu: no usable GPU (%s); run it on a GPU machine (make test-gpu)\n",
           e == cudaSuccess ? "none visible" : cudaGetErrorString(e));
    printf("0 passed, 1 failed\n");
    exit(1);
}

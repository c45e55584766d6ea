/* What bench_decode_gemm's two files share: the error exits, the timing, a weight
 * shape, and the cuBLASLt sweeps of decode_gemm_lt.cu. */
#ifndef PB_BENCH_DECODE_GEMM_H
#define PB_BENCH_DECODE_GEMM_H
#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
#include <cublasLt.h>
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;
#define CU(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); exit(1); } } while (0)
#define LT(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { fprintf(stderr, "%s: status %d (line %d)\n", #x, (int)s_, __LINE__); exit(1); } } while (0)
#define OK(x) do { if ((x) != 0) { fprintf(stderr, "failed: %s (line %d)\n", #x, __LINE__); exit(1); } } while (0)

template <typename F> static inline double median_ms(F fn, int warm, int iters)
{
    for (int i = 0; i < warm; i++) fn();
    CU(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    CU(cudaEventCreate(&a));
    CU(cudaEventCreate(&b));
    std::vector<double> t;
    for (int i = 0; i < iters; i++) {
        CU(cudaEventRecord(a, 0));
        fn();
        CU(cudaEventRecord(b, 0));
        CU(cudaEventSynchronize(b));
        float ms;
        CU(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    CU(cudaEventDestroy(a));
    CU(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

static inline std::vector<uint16_t> host_copy(const void *d, size_t n)
{
    std::vector<uint16_t> h(n);
    CU(cudaMemcpy(h.data(), d, n * 2, cudaMemcpyDeviceToHost));
    return h;
}

struct shape {
    const char *name;
    int n, k, layers, swiglu;  /* swiglu: n is the intermediate size, weights [2n, K] */
    bf16 *w;                   /* layers copies of [wrows, K] */
    size_t wrows() const { return swiglu ? 2 * (size_t)n : (size_t)n; }
    size_t elems() const { return wrows() * k; }
};

/* The cuBLASLt sweeps (decode_gemm_lt.cu), each over one shape at m rows against the
 * copy rate: x the rows (random), y room for the product, y2 a residual the bits
 * checks add to (beta 1), part room for fp32 partials. */
/* The heuristic's first candidate and the fastest (the prefill rows). */
void lt_candidates(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y, int m,
                   double copy_gbs);
/* Every split-K-free candidate, then the fastest's bits at m, 1 and 16 rows. */
void lt_decode(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y, const bf16 *y2,
               int m, double copy_gbs);
/* The decode class's candidates with cuBLASLt's own split-K. */
void lt_splitk(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y, bf16 *y2, int m,
               double copy_gbs);
/* Every configuration cuBLASLt accepts. */
void lt_search(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y, const bf16 *y2,
               int m, double copy_gbs);
/* K in slices over a strided batch, fp32 partials. */
void lt_kbatch(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, float *part, int m,
               double copy_gbs);
#endif

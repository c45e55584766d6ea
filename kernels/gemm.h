/* The linear layers: Y[M, N] = X[M, K] * W[N, K]^T (+ Y when accumulate), bf16 in
 * and out, fp32 accumulation. Two paths, each row-independent so that a row's
 * result never depends on how many rows share the call (microbatches must match
 * the whole batch bit for bit):
 *  - cuBLASLt for prefill, with ONE algorithm per (N, K) chosen once for a fixed
 *    M and with split-K reductions excluded;
 *  - our GEMV for one-token steps (decode), where a tile-based GEMM would leave
 *    most of the GPU idle; it reduces over K in a fixed order. */
#ifndef PB_GEMM_H
#define PB_GEMM_H
#include <stdint.h>
#include <cublasLt.h>
#include <cuda_bf16.h>

#define GEMM_MAX_SHAPES 16
#define GEMM_WORKSPACE_BYTES (32u << 20)
/* Heuristics are asked for this M whatever the call's M, so every part (whatever
 * its max_rows) picks the same algorithm for a shape. */
#define GEMM_HEURISTIC_M 4096

struct gemm_shape {
    int n, k;
    cublasLtMatmulAlgo_t algo;
    cublasLtMatrixLayout_t a, b, c;  /* b and c get the call's M before each use */
};

struct gemm_ctx {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    void *workspace;                 /* GEMM_WORKSPACE_BYTES of device memory */
    int n_shapes;
    struct gemm_shape shapes[GEMM_MAX_SHAPES];
};

/* Handle and descriptors; workspace is device memory the caller owns. */
int gemm_init(struct gemm_ctx *g, void *workspace);
/* Choose and remember the algorithm for one (N, K); call once per shape at setup. */
int gemm_prepare(struct gemm_ctx *g, int n, int k);
void gemm_destroy(struct gemm_ctx *g);

/* cuBLASLt path; the (N, K) must have been prepared. */
int gemm_lt(struct gemm_ctx *g, const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y,
            int m, int n, int k, int accumulate, cudaStream_t s);
/* GEMV path for few rows (K a multiple of 8, pointers 16-byte aligned). */
int gemm_rows(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k,
              int accumulate, cudaStream_t s);
#endif

/* The GEMV with its weights streamed into shared memory by bulk copies
 * (gemv_bulk.cu): gemm_rows' bits, for 1-8 rows and K a multiple of 256. gemm.cu
 * sends its GEMVs here where gemv_bulk_fits and the process's stream setting
 * (gemm_rows_set_stream) asks for it. */
#ifndef PB_GEMV_BULK_H
#define PB_GEMV_BULK_H
#include <cuda_bf16.h>
#include <cuda_runtime.h>

int gemv_bulk_fits(int m, int k);
/* y = x W^T (+ y) or, with swiglu, silu(x W_gate^T) * (x W_up^T) (w = [gate; up],
 * y [m, n]); norm_w non-NULL: x is the raw hidden state and its RMSNorm (eps) is
 * folded in as gemm_rows_norm does (at most 4 rows). */
int gemv_bulk(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, int m, int n, int k, int accumulate,
              int swiglu, const __nv_bfloat16 *norm_w, float eps, cudaStream_t s, int pdl);
#endif

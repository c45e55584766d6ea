/* Checks for the calibration code: each jumps to the function's `done:` label with
 * rc set, so the buffers it allocated are freed on the way out. */
#ifndef PB_CUDA_CALIBRATE_CHECK_H
#define PB_CUDA_CALIBRATE_CHECK_H
#include <cublas_api.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include "../../base/check.h"

#define CK(call)                                                                              \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess) {                                                              \
            rc = pb_fail("%s failed at %s:%d: %s", #call, __FILE__, __LINE__,                 \
                         cudaGetErrorString(e_));                                             \
            goto done;                                                                        \
        }                                                                                     \
    } while (0)
#define CKB(call)                                                                             \
    do {                                                                                      \
        cublasStatus_t s_ = (call);                                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                    \
            rc = pb_fail("%s failed at %s:%d: cuBLAS status %d (%s)", #call, __FILE__,        \
                         __LINE__, (int)s_, cublasGetStatusString(s_));                       \
            goto done;                                                                        \
        }                                                                                     \
    } while (0)
#define CKN(call)                                                                             \
    do {                                                                                      \
        ncclResult_t n_ = (call);                                                             \
        if (n_ != ncclSuccess) {                                                              \
            rc = pb_fail("%s failed at %s:%d: %s", #call, __FILE__, __LINE__,                 \
                         ncclGetErrorString(n_));                                             \
            goto done;                                                                        \
        }                                                                                     \
    } while (0)
#endif

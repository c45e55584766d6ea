/* Status-returning checks for CUDA runtime and cuBLAS calls: a failure prints the
 * call, file, line and error string through pb_fail and returns PB_ERR from the
 * enclosing function, so the caller can tidy up (base/check.h). */
#ifndef PB_CUDA_CHECK_H
#define PB_CUDA_CHECK_H
#include <cuda_runtime.h>
#include <cublasLt.h>
#include "../base/check.h"

#define cudaCheck(call)                                                                   \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        if (e_ != cudaSuccess)                                                            \
            return pb_fail("%s failed at %s:%d: %s", #call, __FILE__, __LINE__,           \
                           cudaGetErrorString(e_));                                       \
    } while (0)

/* After a kernel launch: a bad configuration shows up only in cudaGetLastError. */
#define cudaCheckLaunch() cudaCheck(cudaGetLastError())

#define cublasCheck(call)                                                                 \
    do {                                                                                  \
        cublasStatus_t s_ = (call);                                                       \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                  \
            return pb_fail("%s failed at %s:%d: cuBLAS status %d (%s)", #call, __FILE__,  \
                           __LINE__, (int)s_, cublasLtGetStatusString(s_));               \
    } while (0)

#endif

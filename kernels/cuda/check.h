// Error checks for every CUDA library call: each throws siam::Error with the failed expression, file,
// line and the library's own message. SIAM_CUDA_LAUNCH_CHECK() follows every <<<>>> launch.
//   SIAM_CUDA_CHECK(expr)    cudaError_t                 (cuda_runtime.h, included here)
//   SIAM_CUBLAS_CHECK(expr)  cublasStatus_t              (the caller includes cublas_v2.h or cublasLt.h)
//   SIAM_CUDNN_CHECK(expr)   cudnnStatus_t               (the caller includes cudnn.h)
//   SIAM_NCCL_CHECK(expr)    ncclResult_t                (the caller includes nccl.h)
// The library macros name their library's types and functions only when expanded, so a file that does not
// use cuBLAS, cuDNN or NCCL compiles without their headers.
#pragma once
#include <cuda_runtime.h>

#include "engine/core/error.h"

#define SIAM_CUDA_CHECK(expr)                                                                          \
  do {                                                                                                 \
    cudaError_t siam_err_ = (expr);                                                                    \
    if (siam_err_ != cudaSuccess)                                                                      \
      throw ::siam::Error(::siam::detail::str_cat("CUDA error ", cudaGetErrorName(siam_err_), " (",    \
                                                  cudaGetErrorString(siam_err_), ") in ", #expr,     \
                                                  " at ", __FILE__, ":", __LINE__));                   \
  } while (0)

#define SIAM_CUDA_LAUNCH_CHECK() SIAM_CUDA_CHECK(cudaGetLastError())

#ifndef SIAM_CUBLAS_CHECK
#define SIAM_CUBLAS_CHECK(expr)                                                                        \
  do {                                                                                                 \
    cublasStatus_t siam_st_ = (expr);                                                                  \
    if (siam_st_ != CUBLAS_STATUS_SUCCESS)                                                             \
      throw ::siam::Error(::siam::detail::str_cat("cuBLAS error ", static_cast<int>(siam_st_), " (",   \
                                                  cublasGetStatusString(siam_st_), ") in ", #expr,     \
                                                  " at ", __FILE__, ":", __LINE__));                   \
  } while (0)
#endif

#ifndef SIAM_CUDNN_CHECK
#define SIAM_CUDNN_CHECK(expr)                                                                         \
  do {                                                                                                 \
    cudnnStatus_t siam_st_ = (expr);                                                                   \
    if (siam_st_ != CUDNN_STATUS_SUCCESS)                                                              \
      throw ::siam::Error(::siam::detail::str_cat("cuDNN error ", static_cast<int>(siam_st_), " (",    \
                                                  cudnnGetErrorString(siam_st_), ") in ", #expr,       \
                                                  " at ", __FILE__, ":", __LINE__));                   \
  } while (0)
#endif

#ifndef SIAM_NCCL_CHECK
#define SIAM_NCCL_CHECK(expr)                                                                          \
  do {                                                                                                 \
    ncclResult_t siam_st_ = (expr);                                                                    \
    if (siam_st_ != ncclSuccess)                                                                       \
      throw ::siam::Error(::siam::detail::str_cat("NCCL error ", static_cast<int>(siam_st_), " (",     \
                                                  ncclGetErrorString(siam_st_), ") in ", #expr, " at ",  \
                                                  __FILE__, ":", __LINE__));                           \
  } while (0)
#endif

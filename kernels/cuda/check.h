// Error checks for every CUDA library call: each throws siam::Error with the failed expression, file,
// line and the library's own message. SIAM_CUDA_LAUNCH_CHECK() follows every <<<>>> launch.
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

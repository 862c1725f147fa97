// The dtype casts of the autocast path on CUDA, host entry points without CUDA headers.
//   cast_strided          dst (contiguous, numel elements, type dt) = src (type st, strided view of up to
//                         kCastMaxDims dims: shape, element strides) converted; f32, f64 and bf16 both ways
//                         (round to nearest even into bf16). One thread per element (version 1).
//   widen_bias_bf16_nchw  y (N, K, L) f32 = x (N, K, L) bf16 widened, + bias[k] (f32, may be null): the
//                         autocast conv2d's output, cast and bias in one pass (vectorized by 2, version 1).
#pragma once
#include <cstdint>

#include "kernels/cuda/gemm.h"

namespace siam::kernels::cuda {

constexpr int kCastMaxDims = 8;

void cast_strided(int device, DenseType st, const void* src, int ndim, const int64_t* shape, const int64_t* strides,
                  DenseType dt, void* dst);
void widen_bias_bf16_nchw(int device, const void* x, const float* bias, float* y, int64_t N, int64_t K, int64_t L);

}  // namespace siam::kernels::cuda

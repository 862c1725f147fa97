// CUDA strided copy with dtype conversion and fill: the kernels behind Tensor::copy_, contiguous(), to(dtype)
// and fill_ for CUDA tensors (the CUDA twins of kernels/cpu/copy.h, with the same conversion rules). Host
// entry points on device pointers, launched on the current stream; declared without CUDA headers.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

// dst = convert(src) over `shape` (ndim dims, element strides; 0 on broadcast dims of src).
void copy_strided(int ndim, const int64_t* shape, const void* src, const int64_t* src_strides, DType src_dtype,
                  void* dst, const int64_t* dst_strides, DType dst_dtype);
// dst[0, n) = value converted to dtype.
void fill(void* dst, int64_t n, DType dtype, double value);

}  // namespace siam::kernels::cuda

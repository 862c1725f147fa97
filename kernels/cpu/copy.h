// Strided copy with dtype conversion (any of the 7 dtypes to any other), the kernel behind contiguous(),
// to(dtype) and copy_(). Floating to integer conversion truncates toward zero.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cpu {

void copy_strided(int ndim, const int64_t* shape, const void* src, const int64_t* src_strides, DType src_dtype,
                  void* dst, const int64_t* dst_strides, DType dst_dtype);
void fill(void* dst, int64_t n, DType dtype, double value);

}  // namespace siam::kernels::cpu

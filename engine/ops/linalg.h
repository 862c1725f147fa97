// Matrix products through OpenBLAS (sgemm/dgemm). Transposed operands are passed to BLAS as transposed,
// never copied.
#pragma once
#include "engine/tensor.h"

namespace siam {

// a (..., n, k) @ b (..., k, m) -> (..., n, m), batch dims broadcast; 1-D operands are promoted as in numpy.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (..., in) @ w^T (out, in) + b (out) -> (..., out); b may be undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

}  // namespace siam

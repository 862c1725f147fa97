// Helpers shared by the op front-ends: device checks and the f32/f64 dtype switch.
#pragma once
#include "engine/tensor.h"

namespace siam::ops {

// Throws a siam::Error naming the op when a tensor is not on the CPU (used until an op has a CUDA kernel).
inline void require_cpu(const char* op, std::initializer_list<Tensor> ts) {
  for (const auto& t : ts)
    if (t.defined())
      SIAM_CHECK(t.is_cpu(), op, ": no CUDA kernel for this op yet (got a tensor on ", t.device().str(), ")");
}
inline void require_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  SIAM_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch, ", dtype_name(a.dtype()), " ", shape_str(a.shape()),
             " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
}
inline void require_same_device(const char* op, const Tensor& a, const Tensor& b) {
  SIAM_CHECK(a.device() == b.device(), op, ": device mismatch, ", a.device().str(), " vs ", b.device().str());
}
inline void require_floating(const char* op, const Tensor& t) {
  SIAM_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, op, ": expects an f32 or f64 tensor, got ",
             dtype_name(t.dtype()), " of shape ", shape_str(t.shape()),
             " (bf16/f16 are storage types on the CPU: convert with .to(DType::f32))");
}

}  // namespace siam::ops

// SIAM_DISPATCH_FLOAT(dtype, "op", { ... scalar_t ... }): runs the block with scalar_t = float or double.
#define SIAM_DISPATCH_FLOAT(DT, OPNAME, ...)                                                           \
  switch (DT) {                                                                                        \
    case ::siam::DType::f32: {                                                                         \
      using scalar_t = float;                                                                          \
      __VA_ARGS__;                                                                                     \
      break;                                                                                           \
    }                                                                                                  \
    case ::siam::DType::f64: {                                                                         \
      using scalar_t = double;                                                                         \
      __VA_ARGS__;                                                                                     \
      break;                                                                                           \
    }                                                                                                  \
    default:                                                                                           \
      SIAM_FAIL(OPNAME, ": dtype ", ::siam::dtype_name(DT), " not supported (expects f32 or f64)");    \
  }

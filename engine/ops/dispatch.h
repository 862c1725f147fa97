// Helpers shared by the op front-ends: device checks, the f32/f64 dtype switch, and the CUDA branch.
//
// A front-end with a CUDA kernel dispatches on its input's device:
//   if (x.is_cuda()) {
//     SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index); kernels::cuda::op(...));
//     return out;
//   }
//   ... CPU path ...
// SIAM_CUDA_ONLY compiles its statements only into CUDA builds (an `if constexpr` on kCudaBuild: the
// kernels/cuda entry points are then never referenced, so a CPU-only build links without them); a CPU-only
// build cannot create a CUDA tensor, so the branch is never taken there.
#pragma once
#include "engine/tensor.h"

namespace siam::ops {

#if defined(SIAM_WITH_CUDA)
inline constexpr bool kCudaBuild = true;
#else
inline constexpr bool kCudaBuild = false;
#endif

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
// bf16/f16 inputs of the fused losses and statistics (siamese.h, consistency.h, sinkhorn.h, whiten.h):
// half-precision storage, f32 arithmetic. Those ops accept them (require_floating_or_half) and run on an f32
// copy taken with Tensor::to, whose backward rounds the gradient back to the input's dtype; their scalar
// results and statistics are f32, as nt_xent's are.
inline bool is_half(DType t) { return t == DType::bf16 || t == DType::f16; }
inline void require_floating_or_half(const char* op, const Tensor& t) {
  SIAM_CHECK(is_floating(t.dtype()), op, ": expects a floating tensor (f32, f64, bf16, f16), got ",
             dtype_name(t.dtype()), " of shape ", shape_str(t.shape()));
}
inline void require_floating(const char* op, const Tensor& t) {
  SIAM_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, op, ": expects an f32 or f64 tensor, got ",
             dtype_name(t.dtype()), " of shape ", shape_str(t.shape()),
             " (bf16/f16 are storage types on the CPU: convert with .to(DType::f32))");
}

}  // namespace siam::ops

#define SIAM_CUDA_ONLY(...)                   \
  do {                                        \
    if constexpr (::siam::ops::kCudaBuild) {  \
      __VA_ARGS__;                            \
    }                                         \
  } while (0)

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

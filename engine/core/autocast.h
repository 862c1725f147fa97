// Mixed precision on CUDA: the autocast scope and the TF32 setting.
//
// Autocast. Inside `siam::AutocastGuard guard(DType::bf16);` (per thread, nestable), the CUDA products
// (matmul, linear, conv2d) given f32 tensors compute in bf16 with f32 accumulation:
//   - their f32 inputs (activations, weights, biases) are rounded to bf16 for the product only; the f32
//     tensors themselves (the master weights) are never touched;
//   - their outputs are f32 (the rule: an autocast op returns the dtype its inputs came in). cuBLASLt writes
//     f32 straight from its f32 accumulators; cuDNN writes bf16, widened to f32 in the same pass that adds
//     the bias. So no bf16 tensor escapes the op, and what follows (ReLU, batch norm, pooling, reductions,
//     losses) runs in f32 as the design asks;
//   - the op records one autograd node whose inputs are the f32 tensors; its backward rounds the incoming
//     gradient to bf16, runs the backward products in bf16 (f32 accumulation) and returns f32 gradients, so
//     the f32 leaves receive f32 gradients. The bias gradient is reduced in f32.
// CPU tensors, f64 tensors and tensors that already are bf16 are not cast (bf16 CUDA tensors compute in bf16
// with f32 accumulation and give bf16 results, with or without the scope). Only DType::bf16 is supported.
//
// TF32. f32 products on CUDA (cuBLASLt GEMM and cuDNN convolutions) use exact f32 FMA arithmetic unless TF32
// is allowed: siam::cuda::set_allow_tf32(true), or the environment variable SIAM_ALLOW_TF32=1 (read once, at
// the first query; set_allow_tf32 overrides it). TF32 rounds the inputs to 10 mantissa bits (~1e-3 relative).
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/tensor.h"

namespace siam {

class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype = DType::bf16, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool prev_enabled_;
  DType prev_dtype_;
};

bool autocast_enabled();  // in an enabled AutocastGuard scope on this thread
DType autocast_dtype();   // the scope's compute dtype (bf16)

namespace cuda {
void set_allow_tf32(bool allow);
bool allow_tf32();
// The tensor-core InfoNCE kernels (kernels/cuda/infonce.h, kernel2): nt_xent and moco_infonce on CUDA compute
// their logits on bf16 tensor cores for bf16 inputs and inside an autocast scope (products in bf16, as above),
// where the device has them (compute capability 8.0+) and the features are at most 256. On by default; off with
// set_infonce_tensor_cores(false) or the environment variable SIAM_INFONCE_TC=0 (read once).
void set_infonce_tensor_cores(bool on);
bool infonce_tensor_cores();
}  // namespace cuda

// Helpers of the CUDA op front-ends (engine/ops/{linalg,conv,norm}.cpp); not a user API.
namespace detail {

// True for an f32 CUDA tensor inside an autocast scope: the product ops cast it to autocast_dtype().
bool autocast_applies(const Tensor& t);

// `t` (any layout; f32, f64 or bf16, on CUDA) as a new contiguous tensor of dtype `dt`, in one pass; not
// recorded by autograd. Throws naming `op` in a build without CUDA.
Tensor cuda_cast_contiguous(const Tensor& t, DType dt, const char* op);

// Device scratch memory for one call of a cuBLASLt/cuDNN kernel: fn() hands out device tensors (through the
// device allocator) that live as long as this object. Free them only after the kernels using them were
// enqueued on the same stream (the allocator is stream-ordered; the plain cudaFree synchronizes).
class DeviceScratch {
 public:
  explicit DeviceScratch(Device device) : device_(device) {}
  std::function<void*(size_t)> fn();

 private:
  Device device_;
  std::vector<Tensor> keep_;
};

}  // namespace detail

}  // namespace siam

// Batch norm (through cuDNN 9, in cudnn_norm_pool.cu) and 2-D pooling (hand-written kernels, in
// norm_pool_kernels.cu) on CUDA, with the semantics of kernels/cpu/norm.h and kernels/cpu/pool.h.
//
// Batch norm: x (N, C, L) contiguous of type t (f32, bf16 or f64), seen by cuDNN as (N, C, L, 1) in
// CUDNN_BATCHNORM_SPATIAL mode (statistics per channel over N and L). Per-channel tensors (weight, bias,
// running_mean, running_var, save_mean, save_invstd and their gradients) are f32 for f32/bf16 data and f64
// for f64 data ("param type"), contiguous (C).
//   batch_norm_train_forward  y = (x - mean) * invstd * w + b with the batch's biased variance; writes
//                             save_mean/save_invstd (C); when running_mean/running_var are non-null, updates
//                             them in place: running = (1 - momentum) * running + momentum * batch statistic,
//                             the variance unbiased (M / (M - 1), M = N * L), as the CPU and PyTorch.
//                             cudnnBatchNormalizationForwardTraining.
//   batch_norm_eval_forward   y with the running statistics (cudnnBatchNormalizationForwardInference).
//   batch_norm_train_backward gx, gw, gb from save_mean/save_invstd (cudnnBatchNormalizationBackward); all
//                             three outputs are written (the engine passes scratch for the unwanted ones).
//   batch_norm_eval_backward  gx = gy * w * invstd, gw = sum gy * xhat, gb = sum gy with invstd from the
//                             running variance: a hand-written kernel (cuDNN's backward assumes batch
//                             statistics); one block per channel (version 1). gx/gw/gb may each be null.
// w and b may be null (no affine: 1 and 0; cuDNN gets a ones/zeros buffer from `scratch`).
//
// Pooling over P = N*C planes, x (P, H, W) -> y (P, OH, OW), contiguous, type t, geometry as
// kernels::cpu::Pool2dGeom (output sizes, ceil_mode included, computed by the caller). Hand-written, not
// cuDNN, for exact parity with the CPU: PyTorch's divisors with count_include_pad and ceil_mode windows, the
// index of the first maximum with NaN propagation, and a backward from saved indices (no x and y kept).
// Forward: one thread per output (version 1). Backward: one thread per input element gathering from the
// windows that cover it (no atomics, deterministic; version 1).
//   max_pool2d_forward   y and idx (P, OH, OW) int64: ih * W + iw of the maximum within the plane
//   max_pool2d_backward  gx (P, H, W) = sum of gy over the windows whose idx is this element
//   avg_pool2d_*         divisor as PyTorch (kernels/cpu/pool.h)
//   adaptive_avg_pool2d_*  windows [floor(o*in/out), ceil((o+1)*in/out))
#pragma once
#include <cstdint>

#include "kernels/common/macros.h"
#include "kernels/cpu/pool.h"
#include "kernels/cuda/gemm.h"

namespace siam::kernels::cuda {

// Index arithmetic of the pooling backward kernels, shared with the host so a CPU test checks it against brute
// force (tests/cuda/cuda_dense_test.cpp, CudaPoolIndex.*).
namespace pool_index {
// Outputs o in [lo, hi] whose window [o * s - pad, o * s - pad + k) contains input position i (lo > hi: none).
SIAM_HD_INLINE void covering(int64_t i, int64_t k, int64_t s, int64_t pad, int64_t out, int64_t& lo, int64_t& hi) {
  const int64_t num = i + pad - k + 1;
  lo = num <= 0 ? 0 : (num + s - 1) / s;
  hi = (i + pad) / s;
  if (hi > out - 1) hi = out - 1;
}
// Adaptive pooling: window of output o is [start(o), end(o)) = [floor(o * in / out), ceil((o + 1) * in / out)).
SIAM_HD_INLINE int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
SIAM_HD_INLINE int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }
// Outputs o in [lo, hi] whose adaptive window contains input position i.
SIAM_HD_INLINE void adaptive_covering(int64_t i, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  lo = (i * out) / in;
  hi = ((i + 1) * out + in - 1) / in - 1;
  if (hi > out - 1) hi = out - 1;
}
}  // namespace pool_index

// Throws siam::Error unless t is f32 or f64 (norms run in f32: autocast keeps activations f32).
void check_bn_type(DenseType t);

void batch_norm_train_forward(int64_t N, int64_t C, int64_t L, DenseType t, int device, const void* x, const void* w,
                              const void* b, double momentum, double eps, void* running_mean, void* running_var,
                              void* y, void* save_mean, void* save_invstd, const ScratchFn& scratch);
void batch_norm_eval_forward(int64_t N, int64_t C, int64_t L, DenseType t, int device, const void* x, const void* w,
                             const void* b, const void* running_mean, const void* running_var, double eps, void* y,
                             const ScratchFn& scratch);
void batch_norm_train_backward(int64_t N, int64_t C, int64_t L, DenseType t, int device, const void* x,
                               const void* gy, const void* w, const void* save_mean, const void* save_invstd,
                               double eps, void* gx, void* gw, void* gb, const ScratchFn& scratch);
void batch_norm_eval_backward(int64_t N, int64_t C, int64_t L, DenseType t, int device, const void* x, const void* gy,
                              const void* w, const void* running_mean, const void* running_var, double eps, void* gx,
                              void* gw, void* gb);

using kernels::cpu::Pool2dGeom;

void max_pool2d_forward(const Pool2dGeom& g, DenseType t, int device, const void* x, void* y, int64_t* idx);
void max_pool2d_backward(const Pool2dGeom& g, DenseType t, int device, const void* gy, const int64_t* idx, void* gx);
void avg_pool2d_forward(const Pool2dGeom& g, DenseType t, int device, const void* x, void* y);
void avg_pool2d_backward(const Pool2dGeom& g, DenseType t, int device, const void* gy, void* gx);
void adaptive_avg_pool2d_forward(const Pool2dGeom& g, DenseType t, int device, const void* x, void* y);
void adaptive_avg_pool2d_backward(const Pool2dGeom& g, DenseType t, int device, const void* gy, void* gx);

}  // namespace siam::kernels::cuda

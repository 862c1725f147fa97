// Multi-tensor EMA, SGD and LARS steps on CUDA: the twins of kernels/cpu/multi_tensor.h (the same per-element
// formulas, shared through kernels/common/multi_tensor_math.h). Declared without CUDA headers (called by
// engine/optim/{ema,sgd,lars}.cpp); per-tensor arrays of n contiguous device pointers on the current device,
// launched on its current stream, f32 or f64.
//
// One CUDA block per chunk of kMtCudaChunk elements of one tensor; the (pointers, lengths) table and the
// block -> (tensor, chunk) map travel in the kernel's arguments (up to ~29 KB: 320 tensors and 2048 blocks per
// launch, kernels/common/mt_launch_table.h), so a ResNet-50's 161 parameters (~900 chunks) take one launch and
// no host-to-device copy. f32 chunks whose pointers are 16-byte aligned use float4 loads and stores.
//   mt_ema:  target <- m target + (1 - m) online                                12 bytes / f32 element
//   mt_sgd:  torch.optim.SGD's step (engine/optim/sgd.h); init[t] = 1 for a tensor's first momentum step
//   mt_lars: LARS's step (engine/optim/lars.h) with per-tensor trust ratios computed on the device: a norms
//            pass writes f64 partial sums per block (into device scratch from the caching allocator), then the
//            step kernel's blocks each add up their tensor's partials in block order (deterministic) and apply
//            lars_scaled_lr. No host synchronization.
// Versions: mt_ema_kernel1, mt_sgd_kernel1, mt_lars_norms_kernel1, mt_lars_kernel1.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

constexpr int64_t kMtCudaChunk = 32 * 1024;

void mt_ema(DType dt, int64_t n, void* const* target, const void* const* online, const int64_t* numel,
            double momentum);

struct MtCudaSgdArgs {
  double lr = 0, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false;
};
// buf and init may be null when momentum == 0.
void mt_sgd(DType dt, int64_t n, const MtCudaSgdArgs& a, void* const* p, const void* const* g, void* const* buf,
            const uint8_t* init, const int64_t* numel);

struct MtCudaLarsArgs {
  double lr = 0, weight_decay = 0, momentum = 0, eta = 1e-3;
  bool nesterov = false, clip_lr = false;
  bool exclude = false;  // lars_exclude: no weight decay and no trust ratio (slr = lr)
};
// v may be null when momentum == 0.
void mt_lars(DType dt, int64_t n, const MtCudaLarsArgs& a, void* const* p, const void* const* g, void* const* v,
             const int64_t* numel);

}  // namespace siam::kernels::cuda

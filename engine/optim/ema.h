// Momentum-encoder updates (BYOL, MoCo, DINO teachers) through the multi-tensor kernels of
// kernels/cpu/multi_tensor.h: one fused pass over every (target, online) pair instead of a loop of per-tensor
// op calls with temporaries.
//
//   cosine_momentum(base, step, total) = 1 - (1 - base) * (cos(pi * step / total) + 1) / 2
//       BYOL's schedule: base at step 0, rising to 1 at step total (and 1 after it).
//   ema_update(target, online, m):  target <- m * target + (1 - m) * online, for every pair, in place
//       Floating tensors (f32, f64) get the average; integer tensors (BN's num_batches_tracked) are copied, so
//       passing buffers() of both encoders keeps their BN statistics in step too. m = 1 leaves target as it
//       is and m = 0 copies online (both exactly).
//   copy_params(target, online):    target <- online (initialising a momentum encoder), any dtype
// Both take the lists in the same order (parameters() or buffers() of two identical modules); shapes and
// dtypes must match pairwise (siam::Error naming the index and both shapes otherwise). Targets must be
// contiguous (parameters and buffers are), all on the CPU (kernels/cpu/multi_tensor.h) or all on one CUDA
// device (kernels/cuda/multi_tensor.h, one launch per table of chunks); online tensors may be any layout. Neither
// records autograd, and a target that requires a gradient is written as it stands (as torch's no_grad EMA does).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace siam::optim {

// BYOL's cosine momentum: 1 - (1 - base) * (cos(pi * step / total) + 1) / 2.
double cosine_momentum(double base, int64_t step, int64_t total);

// target <- m * target + (1 - m) * online for every pair, one fused pass; shapes and dtypes must match pairwise
// (siam::Error naming the index and both shapes otherwise). Runs without recording autograd.
void ema_update(const std::vector<Tensor>& target, const std::vector<Tensor>& online, double momentum);

// Copies online into target (the initialisation of a momentum encoder), same checks.
void copy_params(const std::vector<Tensor>& target, const std::vector<Tensor>& online);

}  // namespace siam::optim

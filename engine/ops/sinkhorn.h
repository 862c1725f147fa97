// SwAV's Sinkhorn-Knopp as one op (kernels/cpu/sinkhorn.h; CUDA scores: kernels/cuda/sinkhorn.h): the
// equal-partition codes of a batch of prototype scores, in the plain or the log domain, with hooks for the
// distributed sums (with hooks, CUDA scores are processed on the CPU and the codes copied back).
#pragma once
#include <cstdint>
#include <functional>

#include "engine/tensor.h"

namespace siam {

struct SinkhornHooks {                          // for the distributed form (engine/dist fills these in later)
  std::function<void(Tensor&)> all_reduce_sum;  // sums a tensor over ranks in place; empty: single process
  int64_t global_batch = 0;                     // B over all ranks; 0: the local B
};
// What all_reduce_sum receives: small 1-D f64 CPU tensors, every rank making the same calls in the same
// order: plain form [2] once, then [K] per iteration; log form [K + 1] once, then [K] per iteration (see
// kernels/cpu/sinkhorn.h). It must sum in place and keep the shape.

// SwAV's Sinkhorn-Knopp: scores (B, K) -> assignments Q (B, K), each row summing to 1, with
// Q = exp(scores/eps) alternately normalized (prototypes to 1/K, samples to 1/B) for `iters` iterations.
// log_domain: the same in log space (running logsumexp), finite for small eps. No gradient (a target):
// the output never requires grad. bf16/f16 scores are computed in f32 and give f32 assignments.
Tensor sinkhorn(const Tensor& scores, double eps = 0.05, int iters = 3, bool log_domain = false,
                const SinkhornHooks* hooks = nullptr);

}  // namespace siam

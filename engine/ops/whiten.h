// Batch whitening (W-MSE) as one differentiable op (kernels/cpu/whiten.h): centering, covariance with
// shrinkage, Cholesky factor or Newton-Schulz inverse square root, whitened output, and the backward through
// all of it, instead of a composition that has no Cholesky primitive to differentiate.
#pragma once
#include "engine/tensor.h"

namespace siam {

enum class WhitenAlgo { cholesky, newton_schulz };

// x (M, D), M > D (or eps > 0): centered per feature, Sigma = Xc^T Xc / (M - 1) + eps I, returns Y = Xc W^T
// (M, D) with W = L^{-1} (Cholesky, Sigma = L L^T) or W = Sigma^{-1/2} (Newton-Schulz, ns_iters iterations on
// the trace-normalized Sigma: an approximation for few iterations, as IterNorm uses it). Differentiable w.r.t.
// x (backward through the Cholesky factor / the iterations). A covariance that is not positive definite ->
// siam::Error naming the op, D, M and the failing pivot. bf16/f16 x is whitened in f32 and Y returned in x's
// dtype.
Tensor whiten(const Tensor& x, double eps = 0.0, WhitenAlgo algo = WhitenAlgo::cholesky, int ns_iters = 5);

}  // namespace siam

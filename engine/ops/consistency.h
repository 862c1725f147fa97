// Consistency losses of the non-contrastive methods as fused ops (kernels/cpu/consistency.h; on CUDA
// kernels/cuda/consistency.h and xcorr.h): BYOL and SimSiam's normalized MSE, VICReg's invariance, variance
// and covariance terms. bf16/f16 inputs are computed in f32 (engine/ops/dispatch.h's is_half): the results
// are f32, the gradients in the inputs' dtype.
#pragma once
#include "engine/ops/batch_stat_hooks.h"
#include "engine/tensor.h"

namespace siam {

// BYOL / SimSiam: mean over rows of 2 - 2 cos(p_i, z_i), normalization fused (rows scaled by
// 1 / max(|x|, 1e-12) as normalize does). p, z (N, D); returns shape []. Gradients flow to both; the methods
// pass z.detach() for the stop-gradient.
Tensor normalized_mse(const Tensor& p, const Tensor& z);

// VICReg terms (each shape [], differentiable, f32 accumulation): invariance = mean((z1 - z2)^2) over N*D;
// variance = (mean_j relu(1 - sqrt(var1_j + eps)) + mean_j relu(1 - sqrt(var2_j + eps))) / 2 with unbiased var;
// covariance = (sum_{i!=j} cov1_ij^2 + sum_{i!=j} cov2_ij^2) / D with cov unbiased over the centered batch.
// The method weights them (25, 25, 1 by default). z1, z2 (N, D), N >= 2. The three are views of one fused
// node, so a weighted sum of them runs one backward pass. Through the N x N Gram matrix when N < D: never
// forms the D x D covariance then.
struct VicregTerms {
  Tensor invariance, variance, covariance;
};
VicregTerms vicreg_terms(const Tensor& z1, const Tensor& z2, double eps = 1e-4);
// The distributed form (batch_stat_hooks.h): z1, z2 are this rank's rows; the invariance sum, the means, the
// variances and the covariances are sums over every rank's rows through hooks.all_reduce_sum (four calls: 1,
// 2 D, 2 D and 2 D x D elements, in that order on every rank). Engine ops on the inputs' device, differentiated
// by autograd; always through the D x D covariance.
VicregTerms vicreg_terms(const Tensor& z1, const Tensor& z2, double eps, const BatchStatHooks& hooks);

}  // namespace siam

// Batch norm (1-d over (N, C) or (N, C, L), 2-d over (N, C, H, W)) and layer norm.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace siam {

// training = true: normalizes with the batch's biased variance and, when running_mean/running_var are
// defined, updates them in place with `momentum` (running_var gets the unbiased variance), as PyTorch.
// training = false: normalizes with running_mean/running_var (which must then be defined).
// weight/bias (C) may be undefined (no affine). Differentiable in x, weight and bias.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);

// Normalizes over the trailing dims given by normalized_shape; weight/bias of that shape or undefined.
Tensor layer_norm(const Tensor& x, const std::vector<int64_t>& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

}  // namespace siam

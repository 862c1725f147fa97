// Losses and similarity functions (composites of differentiable primitives unless stated).
#pragma once
#include "engine/tensor.h"

namespace siam {

enum class Reduction { mean, sum, none };

// logits (N, C); target either i64 class indices (N) or soft probabilities (N, C) of logits' dtype.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing = 0.0,
                     Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& a, const Tensor& b, Reduction reduction = Reduction::mean);
// sum(a * b, dim) / (max(|a|, eps) * max(|b|, eps))
Tensor cosine_similarity(const Tensor& a, const Tensor& b, int64_t dim = 1, double eps = 1e-8);
// x / max(|x|_2 along dim, eps)
Tensor normalize(const Tensor& x, int64_t dim = 1, double eps = 1e-12);

}  // namespace siam

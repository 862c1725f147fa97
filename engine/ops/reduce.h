// Reductions over any set of dims (keepdim as in PyTorch), and the softmax family over one dim.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace siam {

Tensor sum(const Tensor& x);  // all elements -> shape []
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// max/min values; the gradient is shared equally among tied maxima.
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Variance with `correction` (1: unbiased, 0: biased, as batch norm uses).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction = 1, bool keepdim = false);
// Euclidean norm along dims; the gradient at a zero vector is 0 (not NaN).
Tensor norm(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Index of the largest value along dim (i64, no gradient).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace siam

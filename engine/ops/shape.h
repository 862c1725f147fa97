// Joining, splitting and indexing.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace siam {

Tensor cat(const std::vector<Tensor>& ts, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);  // last piece may be smaller
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);

// index: i64 (1-D for index_select; same rank as x for gather/scatter_add).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// x with src added at index along dim (out-of-place): out = x; out[.., index[i][j], ..] += src[i][j].
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

// Inverted dropout: zeroes elements with probability p and scales the rest by 1/(1-p) when training.
Tensor dropout(const Tensor& x, double p, bool training = true);

}  // namespace siam

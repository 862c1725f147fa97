#include "engine/nn/activation.h"

#include "engine/ops/elementwise.h"

namespace siam::nn {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

std::string Flatten::extra_repr() const { return detail::str_cat("start_dim=", start_, ", end_dim=", end_); }

}  // namespace siam::nn

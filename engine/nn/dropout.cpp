#include "engine/nn/dropout.h"

#include "engine/ops/shape.h"

namespace siam::nn {

Dropout::Dropout(double p) : Module("Dropout"), p_(p) {
  SIAM_CHECK(p >= 0.0 && p < 1.0, "Dropout: p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p_ == 0.0) return x;
  return dropout(x, p_, true);
}

std::string Dropout::extra_repr() const { return detail::str_cat("p=", p_); }

}  // namespace siam::nn

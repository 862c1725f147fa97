#include "engine/nn/linear.h"

#include <cmath>

#include "engine/nn/init.h"
#include "engine/ops/linalg.h"

namespace siam::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : Module("Linear"), in_(in_features), out_(out_features) {
  SIAM_CHECK(in_features > 0 && out_features > 0, "Linear: in_features and out_features must be positive, got ",
             in_features, " and ", out_features);
  weight_ = &register_parameter("weight", empty({out_, in_}));
  if (bias) bias_ = &register_parameter("bias", empty({out_}));
  reset_parameters();
}

void Linear::reset_parameters() {
  init::kaiming_uniform_(*weight_, std::sqrt(5.0));  // U(-1/sqrt(in), 1/sqrt(in))
  if (bias_) {
    double bound = 1.0 / std::sqrt(static_cast<double>(in_));
    init::uniform_(*bias_, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& x) {
  SIAM_CHECK(x.dim() >= 1 && x.size(-1) == in_, "Linear(", in_, " -> ", out_, "): input of shape ",
             shape_str(x.shape()), " should end in ", in_, " features");
  return linear(x, *weight_, bias());
}

std::string Linear::extra_repr() const {
  return detail::str_cat("in_features=", in_, ", out_features=", out_, ", bias=", bias_ ? "true" : "false");
}

}  // namespace siam::nn

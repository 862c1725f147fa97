#include "engine/nn/init.h"

#include <cmath>

namespace siam::nn::init {

namespace {

void require_defined(const Tensor& t, const char* op) {
  SIAM_CHECK(t.defined(), "nn::init::", op, ": the tensor is undefined");
  SIAM_CHECK(is_floating(t.dtype()), "nn::init::", op, ": expects a floating tensor, got ", dtype_name(t.dtype()),
             " of shape ", shape_str(t.shape()));
}

// The dtype random values are drawn in (the generators produce f32 or f64).
TensorOptions draw_options(const Tensor& t) { return TensorOptions(t.dtype() == DType::f64 ? DType::f64 : DType::f32); }

Tensor fill_from(const Tensor& t, const Tensor& values) {
  NoGradGuard ng;
  Tensor h = t;
  h.copy_(values.to(t.device()));
  return h;
}

int64_t fan(const Tensor& t, FanMode mode) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return mode == FanMode::fan_in ? in : out;
}

}  // namespace

double calculate_gain(Nonlinearity nl, double param) {
  switch (nl) {
    case Nonlinearity::linear:
    case Nonlinearity::sigmoid:
      return 1.0;
    case Nonlinearity::tanh:
      return 5.0 / 3.0;
    case Nonlinearity::relu:
      return std::sqrt(2.0);
    case Nonlinearity::leaky_relu:
      return std::sqrt(2.0 / (1.0 + param * param));
  }
  return 1.0;
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  require_defined(t, "calculate_fan_in_and_fan_out");
  SIAM_CHECK(t.dim() >= 2, "nn::init: fan in and fan out need a tensor with at least 2 dims, got shape ",
             shape_str(t.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor uniform_(const Tensor& t, double lo, double hi, Generator* gen) {
  require_defined(t, "uniform_");
  SIAM_CHECK(lo <= hi, "nn::init::uniform_: lower bound ", lo, " is above upper bound ", hi);
  return fill_from(t, siam::uniform(t.shape(), lo, hi, draw_options(t), gen));
}

Tensor normal_(const Tensor& t, double mean, double std, Generator* gen) {
  require_defined(t, "normal_");
  SIAM_CHECK(std >= 0, "nn::init::normal_: std must be >= 0, got ", std);
  return fill_from(t, siam::normal(t.shape(), mean, std, draw_options(t), gen));
}

Tensor constant_(const Tensor& t, double value) {
  require_defined(t, "constant_");
  NoGradGuard ng;
  Tensor h = t;
  h.fill_(value);
  return h;
}
Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

Tensor kaiming_uniform_(const Tensor& t, double a, FanMode mode, Nonlinearity nl, Generator* gen) {
  require_defined(t, "kaiming_uniform_");
  int64_t f = fan(t, mode);
  SIAM_CHECK(f > 0, "nn::init::kaiming_uniform_: zero fan for shape ", shape_str(t.shape()));
  double bound = calculate_gain(nl, a) * std::sqrt(3.0 / static_cast<double>(f));
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& t, double a, FanMode mode, Nonlinearity nl, Generator* gen) {
  require_defined(t, "kaiming_normal_");
  int64_t f = fan(t, mode);
  SIAM_CHECK(f > 0, "nn::init::kaiming_normal_: zero fan for shape ", shape_str(t.shape()));
  return normal_(t, 0.0, calculate_gain(nl, a) / std::sqrt(static_cast<double>(f)), gen);
}

Tensor xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  double bound = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  return uniform_(t, -bound, bound, gen);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(in + out)), gen);
}

}  // namespace siam::nn::init

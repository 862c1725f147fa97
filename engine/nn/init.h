// Parameter initializers, as torch.nn.init: each fills a tensor in place (under its own NoGradGuard, so it
// works on leaves that require a gradient) from siam's global Philox generator (engine/core/random.h) unless
// a generator is given, and returns the same tensor handle.
//
// Bounds and standard deviations follow PyTorch exactly:
//   kaiming_uniform_: U(-b, b), b = gain * sqrt(3 / fan)      kaiming_normal_: N(0, gain / sqrt(fan))
//   xavier_uniform_:  U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))
//   gain: linear/sigmoid 1, relu sqrt(2), leaky_relu(a) sqrt(2 / (1 + a^2)), tanh 5/3
// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (receptive field = prod of dims 2..).
#pragma once
#include <cstdint>
#include <utility>

#include "engine/core/random.h"
#include "engine/tensor.h"

namespace siam::nn::init {

enum class FanMode { fan_in, fan_out };
enum class Nonlinearity { linear, sigmoid, tanh, relu, leaky_relu };

double calculate_gain(Nonlinearity nl, double param = 0.01);
// (fan_in, fan_out) of a weight with at least 2 dims; throws siam::Error otherwise.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);

Tensor uniform_(const Tensor& t, double lo = 0.0, double hi = 1.0, Generator* gen = nullptr);
Tensor normal_(const Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
Tensor ones_(const Tensor& t);

// Defaults as torch (a = 0, fan_in, leaky_relu). torchvision ResNets use kaiming_normal_(w, 0, fan_out, relu);
// nn.Linear / nn.Conv2d use kaiming_uniform_(w, sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Tensor kaiming_uniform_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                        Nonlinearity nl = Nonlinearity::leaky_relu, Generator* gen = nullptr);
Tensor kaiming_normal_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                       Nonlinearity nl = Nonlinearity::leaky_relu, Generator* gen = nullptr);
Tensor xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
Tensor xavier_normal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);

}  // namespace siam::nn::init

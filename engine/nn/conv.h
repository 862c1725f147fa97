// nn::Conv2d, as torch.nn.Conv2d with padding_mode "zeros": weight (out, in / groups, kH, kW), bias (out).
// PyTorch's default initialization: weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// fan_in = in / groups * kH * kW.
#pragma once
#include "engine/nn/module.h"
#include "engine/ops/conv.h"

namespace siam::nn {

// A (height, width) pair that a single number also sets: `.stride = 2` or `.stride = {2, 1}`.
struct Size2 {
  int64_t h = 0, w = 0;
  Size2(int64_t v) : h(v), w(v) {}  // NOLINT(google-explicit-constructor): the point is `= 2`
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  friend bool operator==(const Size2& a, const Size2& b) { return a.h == b.h && a.w == b.w; }
};

struct Conv2dOptions {
  Size2 stride = 1;
  Size2 padding = 0;
  Size2 dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  // Conv2d(3, 64, 7, {.stride = 2, .padding = 3, .bias = false})
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Conv2dOptions options = {});
  // x (N, in, H, W) -> (N, out, H_out, W_out)
  Tensor forward(const Tensor& x) override;
  void reset_parameters();
  std::string extra_repr() const override;

  const Tensor& weight() const { return *weight_; }
  const Tensor& bias() const { return bias_ ? *bias_ : none(); }
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  Size2 kernel_size() const { return kernel_; }
  const Conv2dOptions& options() const { return opt_; }

 private:
  int64_t in_, out_;
  Size2 kernel_;
  Conv2dOptions opt_;
  Tensor* weight_ = nullptr;
  Tensor* bias_ = nullptr;
};

}  // namespace siam::nn

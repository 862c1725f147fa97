// nn::MaxPool2d and nn::AdaptiveAvgPool2d over (N, C, H, W), as torch.nn.
#pragma once
#include <array>

#include "engine/nn/module.h"
#include "engine/ops/pool.h"

namespace siam::nn {

class MaxPool2d : public Module {
 public:
  // stride 0: same as kernel (torch's default). torchvision's ResNet stem: MaxPool2d(3, 2, 1).
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0, bool ceil_mode = false);
  explicit MaxPool2d(const Pool2dParams& params);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const Pool2dParams& params() const { return p_; }

 private:
  Pool2dParams p_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(int64_t output_size)
      : AdaptiveAvgPool2d(std::array<int64_t, 2>{output_size, output_size}) {}
  explicit AdaptiveAvgPool2d(std::array<int64_t, 2> output_size);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

 private:
  std::array<int64_t, 2> out_;
};

}  // namespace siam::nn

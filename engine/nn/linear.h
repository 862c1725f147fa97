// nn::Linear: y = x W^T + b, W (out, in), b (out). PyTorch's default initialization: W and b from
// U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)).
#pragma once
#include "engine/nn/module.h"

namespace siam::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  // x (..., in) -> (..., out)
  Tensor forward(const Tensor& x) override;
  void reset_parameters();
  std::string extra_repr() const override;

  const Tensor& weight() const { return *weight_; }               // (out, in)
  const Tensor& bias() const { return bias_ ? *bias_ : none(); }  // (out) or undefined
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  Tensor* weight_ = nullptr;
  Tensor* bias_ = nullptr;
};

}  // namespace siam::nn

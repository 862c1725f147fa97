// nn::Dropout: inverted dropout with probability p while training (engine/ops/shape.h dropout, drawn from the
// global generator's dropout stream); the identity in eval mode.
#pragma once
#include "engine/nn/module.h"

namespace siam::nn {

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  double p() const { return p_; }

 private:
  double p_;
};

}  // namespace siam::nn

// optim::SGD, as torch.optim.SGD (dampening 0 by default):
//   d = g + wd * p
//   buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d      (when momentum != 0)
//   d = d + momentum * buf (nesterov) or d = buf
//   p -= lr * d
#pragma once
#include "engine/optim/optimizer.h"

namespace siam::optim {

struct SGDOptions {
  double lr = 0.1;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options);
  // Groups may override lr, weight_decay and momentum; dampening and nesterov apply to all.
  SGD(std::vector<ParamGroupSpec> groups, const SGDOptions& options);
  const SGDOptions& options() const { return opt_; }

 protected:
  void update(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) override;

 private:
  SGDOptions opt_;
};

}  // namespace siam::optim

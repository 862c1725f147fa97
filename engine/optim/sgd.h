// optim::SGD, as torch.optim.SGD (dampening 0 by default):
//   d = g + wd * p
//   buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d      (when momentum != 0)
//   d = d + momentum * buf (nesterov) or d = buf
//   p -= lr * d
// Step: update() collects a group's parameters and, at the group's last parameter with a gradient, runs one
// multi-tensor pass over all of them (kernels/cpu/multi_tensor.h: mt_sgd), per dtype. Parameters the fused
// pass cannot take (not contiguous f32/f64 CPU tensors, or a loaded buffer of another dtype or shape) are
// updated one at a time by the same formulas through engine ops.
#pragma once
#include <vector>

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
  struct Pending {
    size_t index;
    Tensor p, g;  // g contiguous
  };
  void update_one(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g);
  void flush(const ParamGroup& group);

  SGDOptions opt_;
  const ParamGroup* pending_group_ = nullptr;
  std::vector<Pending> pending_;  // the current group's parameters awaiting the fused pass
};

}  // namespace siam::optim

// optim::AdamW, as torch.optim.AdamW (amsgrad off). Per parameter, with t = its step count (from 1):
//   p *= 1 - lr * wd                                   (decoupled weight decay)
//   m = b1 * m + (1 - b1) * g          v = b2 * v + (1 - b2) * g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// State: "step" (i64 scalar), "exp_avg" (m), "exp_avg_sq" (v). A group's momentum override is not used.
#pragma once
#include "engine/optim/optimizer.h"

namespace siam::optim {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& options);
  AdamW(std::vector<ParamGroupSpec> groups, const AdamWOptions& options);
  const AdamWOptions& options() const { return opt_; }

 protected:
  void update(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) override;

 private:
  AdamWOptions opt_;
};

}  // namespace siam::optim

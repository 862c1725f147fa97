// optim::LARS as SimCLR (TF) and BYOL (optax.lars) use it: layer-wise trust ratio, then momentum on the
// lr-scaled update. For a parameter p with gradient g in a group that is not lars_exclude:
//   d = g + wd * p
//   trust = eta * ||p|| / ||d||      (1 when ||p|| or ||d|| is 0)
//   scaled_lr = lr * trust           (clip_lr: lr * min(trust / lr, 1) = min(trust, lr), as apex LARC)
// In a lars_exclude group (biases, norm parameters): d = g and scaled_lr = lr (no decay, no adaptation).
// Then, with v the "momentum_buffer" (zero before the first step):
//   v = momentum * v + scaled_lr * d
//   p -= nesterov ? momentum * v + scaled_lr * d : v
// Unlike torch's SGD the buffer holds lr-scaled updates, so an lr change takes effect through the buffer
// gradually (this is what the TF and optax versions do).
// Step: update() collects a group's parameters and, at the group's last parameter with a gradient, runs two
// multi-tensor passes over all of them (kernels/cpu/multi_tensor.h): mt_lars_norms for every ||p|| and ||d||
// (skipped in a lars_exclude group), then mt_lars for the momentum and the update, per dtype. Parameters the
// fused passes cannot take (not contiguous f32/f64 CPU tensors, or a loaded buffer of another dtype or shape)
// are updated one at a time by the same formulas through engine ops.
#pragma once
#include <vector>

#include "engine/optim/optimizer.h"

namespace siam::optim {

struct LARSOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 0;
  double eta = 0.001;  // trust coefficient
  bool nesterov = false;
  bool clip_lr = false;
};

class LARS : public Optimizer {
 public:
  LARS(std::vector<Tensor> params, const LARSOptions& options);
  // Typically split_decay_exclude(model.named_parameters()).
  LARS(std::vector<ParamGroupSpec> groups, const LARSOptions& options);
  const LARSOptions& options() const { return opt_; }

 protected:
  void update(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) override;

 private:
  struct Pending {
    size_t index;
    Tensor p, g;  // g contiguous
  };
  void update_one(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g);
  void flush(const ParamGroup& group);

  LARSOptions opt_;
  const ParamGroup* pending_group_ = nullptr;
  std::vector<Pending> pending_;  // the current group's parameters awaiting the fused passes
};

}  // namespace siam::optim

// Learning-rate (or any scalar) schedules over optimizer steps. lr_at(step) is the value at a step (from 0);
// apply(opt, step) sets it on an optimizer through Optimizer::set_lr, which keeps each group's lr ratio.
//   ConstantSchedule(v):         v
//   WarmupCosineSchedule:        step < warmup:  warmup_start + (base - warmup_start) * step / warmup
//                                after:          final + (base - final) * (1 + cos(pi * (step - warmup) /
//                                                (total - warmup))) / 2, and `final` from step >= total
//                                (SimCLR/BYOL/solo-learn; base < final works too: BYOL's EMA tau 0.996 -> 1)
//   StepSchedule(base, ms, g):   base * g^(number of milestones <= step)   (torch MultiStepLR)
#pragma once
#include <cstdint>
#include <vector>

#include "engine/optim/optimizer.h"

namespace siam::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr_at(int64_t step) const = 0;
  void apply(Optimizer& opt, int64_t step) const { opt.set_lr(lr_at(step)); }
};

class ConstantSchedule : public LrSchedule {
 public:
  explicit ConstantSchedule(double value) : value_(value) {}
  double lr_at(int64_t) const override { return value_; }

 private:
  double value_;
};

struct WarmupCosineOptions {
  double base = 0.1;         // the value at the end of the warmup
  double final_value = 0.0;  // the value from total_steps on
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double warmup_start = 0.0;  // the value at step 0 when warmup_steps > 0
};

class WarmupCosineSchedule : public LrSchedule {
 public:
  explicit WarmupCosineSchedule(const WarmupCosineOptions& options);
  double lr_at(int64_t step) const override;
  const WarmupCosineOptions& options() const { return o_; }

 private:
  WarmupCosineOptions o_;
};

class StepSchedule : public LrSchedule {
 public:
  StepSchedule(double base, std::vector<int64_t> milestones, double gamma = 0.1);
  double lr_at(int64_t step) const override;

 private:
  double base_, gamma_;
  std::vector<int64_t> milestones_;
};

}  // namespace siam::optim

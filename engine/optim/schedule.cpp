#include "engine/optim/schedule.h"

#include <cmath>
#include <numbers>

namespace siam::optim {

WarmupCosineSchedule::WarmupCosineSchedule(const WarmupCosineOptions& o) : o_(o) {
  SIAM_CHECK(o.total_steps > 0, "WarmupCosineSchedule: total_steps must be positive, got ", o.total_steps);
  SIAM_CHECK(o.warmup_steps >= 0 && o.warmup_steps <= o.total_steps, "WarmupCosineSchedule: warmup_steps ",
             o.warmup_steps, " must be in [0, total_steps = ", o.total_steps, "]");
}

double WarmupCosineSchedule::lr_at(int64_t step) const {
  SIAM_CHECK(step >= 0, "WarmupCosineSchedule::lr_at: negative step ", step);
  if (step < o_.warmup_steps)
    return o_.warmup_start +
           (o_.base - o_.warmup_start) * static_cast<double>(step) / static_cast<double>(o_.warmup_steps);
  if (step >= o_.total_steps) return o_.final_value;
  double progress = static_cast<double>(step - o_.warmup_steps) / static_cast<double>(o_.total_steps - o_.warmup_steps);
  return o_.final_value + (o_.base - o_.final_value) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

StepSchedule::StepSchedule(double base, std::vector<int64_t> milestones, double gamma)
    : base_(base), gamma_(gamma), milestones_(std::move(milestones)) {
  for (size_t i = 1; i < milestones_.size(); ++i)
    SIAM_CHECK(milestones_[i - 1] < milestones_[i], "StepSchedule: milestones must increase, got ", milestones_[i - 1],
               " before ", milestones_[i]);
}

double StepSchedule::lr_at(int64_t step) const {
  double v = base_;
  for (int64_t m : milestones_)
    if (step >= m) v *= gamma_;
  return v;
}

}  // namespace siam::optim

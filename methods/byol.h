// BYOL (Grill et al. 2020): the online network (encoder, projector, predictor) predicts the target network's
// projection of the other view; the target is an EMA of the online encoder and projector (no gradient; the
// momentum rises from `momentum` to 1 on a cosine over the run). Loss: 2 - 2 cos(p_i, z'_i) averaged over
// rows, summed over both directions (engine/ops/consistency.h normalized_mse, normalization fused).
#pragma once
#include "methods/method.h"

namespace siam::methods {

class BYOL : public Method {
 public:
  BYOL(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options);
  LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) override;
  void after_optimizer_step(const StepInfo& info) override;
  double momentum_at(const StepInfo& info) const;

 private:
  std::shared_ptr<models::MLP> projector_, predictor_;
  std::shared_ptr<models::ResNet> target_encoder_;
  std::shared_ptr<models::MLP> target_projector_;
};

}  // namespace siam::methods

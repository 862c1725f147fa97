// VICReg (Bardes et al. 2022): invariance (MSE between the two views' embeddings), variance (a hinge keeping
// every dimension's standard deviation at 1 or above) and covariance (off-diagonal covariances to 0), weighted
// sim_weight / var_weight / cov_weight (25 / 25 / 1). The terms come from engine/ops/consistency.h.
#pragma once
#include "methods/method.h"

namespace siam::methods {

class VICReg : public Method {
 public:
  VICReg(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options);
  LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) override;

 private:
  std::shared_ptr<models::MLP> projector_;
};

}  // namespace siam::methods

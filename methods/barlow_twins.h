// Barlow Twins (Zbontar et al. 2021): the cross-correlation of the two views' batch-standardized projections
// is pulled toward the identity: sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2 (engine/ops/siamese.h
// barlow_twins_loss: standardization, C and both terms fused, with their backward).
#pragma once
#include "methods/method.h"

namespace siam::methods {

class BarlowTwins : public Method {
 public:
  BarlowTwins(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options);
  LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) override;

 private:
  std::shared_ptr<models::MLP> projector_;
};

}  // namespace siam::methods

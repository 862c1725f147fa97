// SimSiam (Chen & He 2021): encoder + projector (3 layers, BN on the output) + predictor; each view's
// prediction is pulled toward the other view's projection behind a stop-gradient (detach: a zero-copy view).
// Loss: D(p1, z2) / 2 + D(p2, z1) / 2 with D = -cos, as the paper writes it (its minimum is -1).
#pragma once
#include "methods/method.h"

namespace siam::methods {

class SimSiam : public Method {
 public:
  SimSiam(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options);
  LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) override;

 private:
  std::shared_ptr<models::MLP> projector_, predictor_;
};

}  // namespace siam::methods

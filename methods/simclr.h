// SimCLR (Chen et al. 2020): encoder -> projector MLP -> NT-Xent over the 2N rows of two views, every other
// row a negative, the other view of the same image the positive. The fused tiled kernel
// (engine/ops/siamese.h nt_xent) never builds the 2N x 2N similarity matrix.
#pragma once
#include "methods/method.h"

namespace siam::methods {

class SimCLR : public Method {
 public:
  SimCLR(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options);
  LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) override;
  models::MLP& projector() { return *projector_; }

 private:
  std::shared_ptr<models::MLP> projector_;
};

}  // namespace siam::methods

// W-MSE (Ermolov et al. 2021): the projections of each view are whitened in sub-batches of `whiten_size`
// rows drawn by a random split of the batch (repeated `whiten_iters` times), then the whitened views of the
// same samples are pulled together with 2 - 2 cos. Whitening (engine/ops/whiten.h: covariance, Cholesky,
// triangular solve, and the backward through the factor) scatters the embeddings, so nothing collapses.
// Every pair of views contributes; the loss is averaged over pairs and repeats.
#pragma once
#include "methods/method.h"

namespace siam::methods {

class WMSE : public Method {
 public:
  WMSE(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options);
  LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) override;

 private:
  std::shared_ptr<models::MLP> projector_;
};

}  // namespace siam::methods

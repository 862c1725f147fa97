// SwAV (Caron et al. 2020): normalized projections are scored against K learnable prototypes; the codes of
// each global view come from Sinkhorn-Knopp on its scores (equipartition over the batch, no gradient;
// engine/ops/sinkhorn.h), and every other view predicts them with a softmax at `temperature` (swapped
// prediction). Multi-crop: views beyond the first two (global) ones only predict. The prototypes are
// re-normalized before every step and get no update for the first `freeze_prototypes_steps` steps. With
// `swav_queue` > 0 the embeddings of recent batches extend the batch that Sinkhorn equipartitions (small
// batches), from step `swav_queue_start_step` on.
#pragma once
#include "methods/method.h"

namespace siam::methods {

class SwAV : public Method {
 public:
  SwAV(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options);
  LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) override;
  void before_optimizer_step(const StepInfo& info) override;
  void after_optimizer_step(const StepInfo& info) override;
  int min_views() const override { return 2; }
  models::Prototypes& prototypes() { return *prototypes_; }

 private:
  std::shared_ptr<models::MLP> projector_;
  std::shared_ptr<models::Prototypes> prototypes_;
  Tensor* queue_ = nullptr;       // (2, L, D) embeddings of the two global views of recent batches
  Tensor* queue_fill_ = nullptr;  // i64 []: rows of the queue filled so far (up to L)
  Tensor pending_;                // (2, B, D) this step's embeddings (all micro-batches'), pushed after the step
};

}  // namespace siam::methods

// MoCo v2 (He et al. 2020; Chen et al. 2020): queries from the encoder + projector, keys from their momentum
// copies (EMA of the online weights, no gradient), InfoNCE of each query against its own key and a queue of
// the keys of past batches (engine/ops/siamese.h moco_infonce: the fused kernel scores the queue in tiles).
// Symmetric by default (each view in turn is the query). Shuffle-BN: the query batch goes through the encoder in
// `shuffle_bn_groups` groups, and the key batch (gathered from every rank) is shuffled before it is split among
// the ranks and into groups, so a query and its positive key never share batch-norm statistics, as on MoCo's
// 8 GPUs, and on one process alike. Keys of every rank enter every rank's queue.
#pragma once
#include "methods/method.h"

namespace siam::methods {

class MoCo : public Method {
 public:
  MoCo(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options);
  LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) override;
  void after_optimizer_step(const StepInfo& info) override;
  const Tensor& queue() const { return *queue_; }  // (K, D), rows L2-normalized

 private:
  // head(encoder(x)) over x's rows in `shuffle_bn_groups` consecutive groups (separate batch statistics).
  Tensor grouped_forward(nn::Module& enc, nn::Module& head, const Tensor& x);
  std::shared_ptr<models::MLP> projector_;
  std::shared_ptr<models::ResNet> key_encoder_;
  std::shared_ptr<models::MLP> key_projector_;
  Tensor* queue_ = nullptr;      // (K, D)
  Tensor* queue_ptr_ = nullptr;  // i64 [] next row to overwrite
  Tensor pending_keys_;          // keys of the step's batch (or micro-batches), enqueued after the optimizer step
};

}  // namespace siam::methods

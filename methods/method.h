// The interface every method implements: views in, loss and logged scalars out. A Method is an nn::Module
// that owns all its networks and state as children and buffers (encoder, projector, predictor, momentum
// encoders, queues, prototypes), so its state_dict() is everything a checkpoint needs and the trainer never
// learns a method's internals.
//
//   auto method = methods::make_method(options, encoder);
//   opt = SGD(method->trainable_parameters(), ...)
//   per step:  out = method->loss(views, info); opt.zero_grad(); out.loss.backward();
//              method->before_optimizer_step(info); opt.step(); method->after_optimizer_step(info);
//
// Views: V tensors (B, C, H_v, W_v) of the same B samples; view v of sample i is row i of views[v]. Views of
// the same size go through the encoder together (one forward over V*B rows); multi-crop views of another size
// make a second forward. Pre-projector features (the encoder's pooled output) are what evaluation uses.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/dist/dist.h"
#include "engine/nn/module.h"
#include "engine/ops/batch_stat_hooks.h"
#include "methods/options.h"
#include "models/heads.h"
#include "models/resnet.h"

namespace siam::methods {

struct StepInfo {
  int64_t step = 0;         // global optimizer step, from 0
  int64_t total_steps = 1;  // of the whole run (momentum and schedules)
  int64_t epoch = 0;
};

struct LossOutput {
  Tensor loss;                                          // shape [], to backward
  std::vector<std::pair<std::string, double>> scalars;  // logged beside the loss (terms, momentum, ...)
};

class Method : public nn::Module {
 public:
  Method(std::string type_name, std::shared_ptr<models::ResNet> encoder);

  // The loss of one batch of views (training mode), recording autograd for the trainable parameters.
  virtual LossOutput loss(const std::vector<Tensor>& views, const StepInfo& info) = 0;
  // Between backward and the optimizer step (SwAV drops the prototypes' gradient while they are frozen).
  virtual void before_optimizer_step(const StepInfo&) {}
  // After the optimizer step: EMA targets, queues.
  virtual void after_optimizer_step(const StepInfo&) {}

  // The parameters the optimizer updates (momentum encoders excluded), under their state_dict names.
  nn::NamedTensors trainable_parameters() const;
  models::ResNet& encoder() { return *encoder_; }
  std::shared_ptr<models::ResNet> encoder_ptr() const { return encoder_; }
  // Pre-projector features (N, feature_dim) of images x (N, C, H, W).
  Tensor features(const Tensor& x) { return encoder_->forward(x); }
  const MethodOptions& options() const { return opt_; }
  virtual int min_views() const { return 2; }

  // Data parallel: the communicator whose ranks share the batch (null: dist::world() at call time). Losses over
  // batch statistics (NT-Xent's negatives, Barlow's C, VICReg's covariance, W-MSE's whitening, SwAV's Sinkhorn,
  // MoCo's keys) see the global batch; per-sample losses stay local. Every rank's loss is then either the
  // global loss itself or its local mean, as engine/dist/dist.h's convention wants (DDP averages gradients).
  void set_communicator(dist::Communicator* comm) { comm_ = comm; }
  dist::Communicator& comm() const { return comm_ ? *comm_ : dist::world(); }

 protected:
  // Encodes every view, batching views of equal size into one forward (one forward per view when
  // options().per_view_forward); returns one (B, F) tensor per view.
  std::vector<Tensor> encode(nn::Module& encoder, const std::vector<Tensor>& views);
  // Applies a head to every view's features in one forward over the stacked rows (batch norm sees all views,
  // as SwAV and SimCLR's reference code do; per view when options().per_view_forward); one (B, out) per view.
  std::vector<Tensor> project(nn::Module& head, const std::vector<Tensor>& feats);
  // Checks the view count and that all views share the batch size; returns B.
  int64_t check_views(const std::vector<Tensor>& views) const;
  // A projector / predictor MLP from head options.
  static std::shared_ptr<models::MLP> make_head(int64_t in_dim, const HeadOptions& h);
  // A deep copy of `src` made by `make` (same architecture), with src's values, frozen (no gradient).
  template <class M, class Make> std::shared_ptr<M> frozen_copy(const M& src, Make make) {
    auto m = make();
    copy_into(*m, src);
    return m;
  }
  // Rows of every rank, concatenated in rank order, with the gradient flowing back to each rank's own rows
  // (dist::all_gather_rows); z itself on one rank.
  Tensor gather_rows(const Tensor& z) const;
  // The same without autograd (keys, scores for Sinkhorn).
  Tensor gather_rows_nograd(const Tensor& z) const;
  // method.batch_stats = all_reduce on more than one rank: batch statistics as all-reduced sums.
  bool all_reduce_stats() const { return opt_.batch_stats == "all_reduce" && comm().world_size() > 1; }
  // Hooks summing over comm()'s ranks (dist::all_reduce_sum) for `local_rows` rows on every rank.
  BatchStatHooks batch_stat_hooks(int64_t local_rows) const;
  // A permutation of 0..n-1 from Philox keyed by (options().seed, purpose, step): the same on every run.
  std::vector<int64_t> permutation(int64_t n, uint64_t purpose, int64_t step) const;
  static void copy_into(nn::Module& dst, const nn::Module& src);  // values of params and buffers; dst frozen

  MethodOptions opt_;
  std::shared_ptr<models::ResNet> encoder_;
  dist::Communicator* comm_ = nullptr;
};

// Builds the method `options.name` over `encoder` (the options are validated; siam::Error names bad values).
std::shared_ptr<Method> make_method(const MethodOptions& options, std::shared_ptr<models::ResNet> encoder);

}  // namespace siam::methods

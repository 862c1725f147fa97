// SwAV: prototypes, Sinkhorn codes, swapped prediction, multi-crop. (methods/swav.h)
#include "methods/swav.h"

#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/ops/sinkhorn.h"

namespace siam::methods {

SwAV::SwAV(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options) : Method("SwAV", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.temperature > 0, "swav: method.temperature must be > 0, got ", opt_.temperature);
  SIAM_CHECK(opt_.prototypes >= 2, "swav: method.prototypes must be >= 2, got ", opt_.prototypes);
  SIAM_CHECK(opt_.sinkhorn_eps > 0 && opt_.sinkhorn_iters >= 1,
             "swav: method.sinkhorn_eps must be > 0 and sinkhorn_iters >= 1, got ", opt_.sinkhorn_eps, " and ",
             opt_.sinkhorn_iters);
  check_batch_stats("swav", opt_);
  SIAM_CHECK(opt_.swav_queue >= 0, "swav: method.swav_queue must be >= 0, got ", opt_.swav_queue);
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
  prototypes_ =
      register_module("prototypes", std::make_shared<models::Prototypes>(opt_.projector.out, opt_.prototypes));
  if (opt_.swav_queue > 0) {
    queue_ = &register_buffer("queue", zeros({2, opt_.swav_queue, opt_.projector.out}));
    queue_fill_ = &register_buffer("queue_fill", zeros({}, DType::i64));
  }
}

LossOutput SwAV::loss(const std::vector<Tensor>& views, const StepInfo& info) {
  const int64_t b = check_views(views);
  prototypes_->normalize_();
  auto z = project(*projector_, encode(*encoder_, views));  // V x (B, D)
  std::vector<Tensor> scores;                               // V x (B, K)
  for (auto& zv : z) scores.push_back((*prototypes_)(normalize(zv, 1)));
  const size_t nv = views.size();
  const bool use_queue = queue_ != nullptr && info.step >= opt_.swav_queue_start_step &&
                         static_cast<int64_t>(queue_fill_->item()) >= opt_.swav_queue;
  Tensor total;
  for (size_t g = 0; g < 2; ++g) {
    Tensor q;  // (B, K) codes of global view g, no gradient
    {
      NoGradGuard ng;
      // Sinkhorn equipartitions the global batch (every rank's scores, plus the queued ones): this rank's
      // codes are its block of the result.
      Tensor s = scores[g].detach();
      if (use_queue) s = cat({(*prototypes_)(queue_->select(0, static_cast<int64_t>(g))), s}, 0);
      const int64_t rows = s.size(0);
      if (all_reduce_stats()) {  // method.batch_stats: Sinkhorn's sums all-reduced, each rank its own rows
        SinkhornHooks h;
        h.all_reduce_sum = [this](Tensor& t) { comm().all_reduce(t, dist::ReduceOp::sum); };
        h.global_batch = rows * comm().world_size();
        q = sinkhorn(s, opt_.sinkhorn_eps, opt_.sinkhorn_iters, false, &h).narrow(0, rows - b, b);
      } else {
        Tensor sg = gather_rows_nograd(s);
        q = sinkhorn(sg, opt_.sinkhorn_eps, opt_.sinkhorn_iters);
        q = q.narrow(0, comm().rank() * rows + rows - b, b);
      }
    }
    for (size_t v = 0; v < nv; ++v) {
      if (v == g) continue;
      // -mean_i sum_k q_ik log softmax(scores_v / t)_ik
      Tensor lp = log_softmax(div(scores[v], opt_.temperature), 1);
      Tensor l = neg(mean(sum(mul(q, lp), {1})));
      total = total.defined() ? add(total, l) : l;
    }
  }
  if (queue_ != nullptr) {
    NoGradGuard ng;
    Tensor now = stack({normalize(z[0].detach(), 1), normalize(z[1].detach(), 1)}, 0);  // (2, B, D)
    // with gradient accumulation (train.accumulate), every micro-batch's embeddings, newest first as the queue
    // keeps them (after_optimizer_step puts pending_ at its front)
    pending_ = pending_.defined() ? cat({now, pending_}, 1) : now;
  }
  return {div(total, static_cast<double>(2 * (nv - 1))), {}};
}

void SwAV::before_optimizer_step(const StepInfo& info) {
  if (info.step < opt_.freeze_prototypes_steps) {
    Tensor& w = prototypes_->param("weight");
    w.set_grad(Tensor());
  }
}

void SwAV::after_optimizer_step(const StepInfo&) {
  if (queue_ == nullptr || !pending_.defined()) return;
  NoGradGuard ng;
  // Shift the queue by B rows and put the newest embeddings first (SwAV's order).
  const int64_t l = queue_->size(1), b = std::min(pending_.size(1), l);
  if (l > b) {
    Tensor old = queue_->narrow(1, 0, l - b).clone();
    queue_->narrow(1, b, l - b).copy_(old);
  }
  queue_->narrow(1, 0, b).copy_(pending_.narrow(1, 0, b));
  queue_fill_->fill_(static_cast<double>(std::min<int64_t>(l, static_cast<int64_t>(queue_fill_->item()) + b)));
  pending_ = Tensor();
}

}  // namespace siam::methods

// MoCo v2 with a queue, momentum encoder and one-process shuffle-BN. (methods/moco.h)
#include "methods/moco.h"

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/shape.h"
#include "engine/ops/siamese.h"
#include "engine/optim/ema.h"

namespace siam::methods {

MoCo::MoCo(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options) : Method("MoCo", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.temperature > 0, "moco: method.temperature must be > 0, got ", opt_.temperature);
  SIAM_CHECK(opt_.queue_size > 0, "moco: method.queue_size must be > 0, got ", opt_.queue_size);
  SIAM_CHECK(opt_.momentum >= 0 && opt_.momentum <= 1, "moco: method.momentum must be in [0, 1], got ", opt_.momentum);
  SIAM_CHECK(opt_.shuffle_bn_groups >= 1, "moco: method.shuffle_bn_groups must be >= 1, got ", opt_.shuffle_bn_groups);
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
  key_encoder_ = register_module("key_encoder", std::make_shared<models::ResNet>(encoder_->config()));
  key_projector_ = register_module("key_projector", make_head(encoder_->feature_dim(), opt_.projector));
  copy_into(*key_encoder_, *encoder_);
  copy_into(*key_projector_, *projector_);
  // The queue starts as random unit vectors (MoCo's initialisation), drawn from the default generator.
  Tensor q = normalize(randn({opt_.queue_size, opt_.projector.out}), 1);
  queue_ = &register_buffer("queue", q);
  queue_ptr_ = &register_buffer("queue_ptr", zeros({}, DType::i64));
}

Tensor MoCo::grouped_forward(nn::Module& enc, nn::Module& head, const Tensor& x) {
  const int64_t groups = std::max<int64_t>(std::min<int64_t>(opt_.shuffle_bn_groups, x.size(0) / 2), 1);
  if (groups == 1) return head(enc(x));
  std::vector<Tensor> outs;
  for (auto& part : chunk(x, groups, 0)) outs.push_back(head(enc(part)));
  return cat(outs, 0);  // (n, D)
}

LossOutput MoCo::loss(const std::vector<Tensor>& views, const StepInfo& info) {
  const int64_t b = check_views(views);
  SIAM_CHECK(views.size() == 2 && views[0].shape() == views[1].shape(),
             "moco: uses exactly 2 views of the same size, got ", views.size());
  Tensor x = cat({views[0], views[1]}, 0);  // (2B, C, H, W): this rank's view-1 rows, then its view-2 rows
  Tensor q = grouped_forward(*encoder_, *projector_, x);
  const int64_t world = comm().world_size(), rank = comm().rank(), n = 2 * b;
  Tensor k_all;  // (W 2B, D) every rank's keys, rank-major, in the original order
  {
    NoGradGuard ng;
    // Shuffle-BN: the keys are computed on a permutation of the global key batch (the same permutation on every
    // rank: it is keyed by the seed and the step), this rank taking one slice, in groups; gathered back and
    // unshuffled, no key shares batch statistics with its query.
    Tensor xg = gather_rows_nograd(x);  // (W 2B, C, H, W)
    std::vector<int64_t> perm = permutation(world * n, /*purpose=*/1, info.step);
    std::vector<int64_t> mine(perm.begin() + rank * n, perm.begin() + (rank + 1) * n);
    Tensor k = grouped_forward(*key_encoder_, *key_projector_,
                               index_select(xg, 0, from_vector_i64(mine, {n}).to(xg.device())));
    Tensor kg = gather_rows_nograd(normalize(k, 1));  // row j is the key of global row perm[j]
    std::vector<int64_t> inv(perm.size());
    for (size_t j = 0; j < perm.size(); ++j) inv[static_cast<size_t>(perm[j])] = static_cast<int64_t>(j);
    k_all = index_select(kg, 0, from_vector_i64(inv, {world * n}).to(kg.device()));
  }
  Tensor k = k_all.narrow(0, rank * n, n);
  Tensor q1 = q.narrow(0, 0, b), q2 = q.narrow(0, b, b);
  Tensor k1 = k.narrow(0, 0, b), k2 = k.narrow(0, b, b);
  Tensor l = moco_infonce(q1, k2, *queue_, opt_.temperature);
  if (opt_.symmetric) l = mul(add(l, moco_infonce(q2, k1, *queue_, opt_.temperature)), 0.5);
  // Keys enter the queue view-major in global sample order (every rank's view-1 keys, then every rank's view-2
  // keys), so W ranks with batch B fill the queue exactly as one process with batch W B; every rank enqueues
  // the same keys and the queues stay identical.
  std::vector<Tensor> order;
  for (int64_t v = opt_.symmetric ? 0 : 1; v < 2; ++v)
    for (int64_t r = 0; r < world; ++r) order.push_back(k_all.narrow(0, r * n + v * b, b));
  Tensor keys = order.size() == 1 ? order[0] : cat(order, 0);
  // With gradient accumulation (train.accumulate) loss runs once per micro-batch before the step: every
  // micro-batch's keys are enqueued, in micro-batch order.
  pending_keys_ = pending_keys_.defined() ? cat({pending_keys_, keys}, 0) : keys;
  return {l, {}};
}

void MoCo::after_optimizer_step(const StepInfo&) {
  optim::ema_update(key_encoder_->parameters(), encoder_->parameters(), opt_.momentum);
  optim::ema_update(key_projector_->parameters(), projector_->parameters(), opt_.momentum);
  if (!pending_keys_.defined()) return;
  NoGradGuard ng;
  const int64_t kq = queue_->size(0), n = pending_keys_.size(0);
  int64_t ptr = static_cast<int64_t>(queue_ptr_->item());
  for (int64_t done = 0; done < n;) {  // ring buffer, wrapping
    int64_t len = std::min(n - done, kq - ptr);
    queue_->narrow(0, ptr, len).copy_(pending_keys_.narrow(0, done, len));
    done += len;
    ptr = (ptr + len) % kq;
  }
  queue_ptr_->fill_(static_cast<double>(ptr));
  pending_keys_ = Tensor();
}

}  // namespace siam::methods

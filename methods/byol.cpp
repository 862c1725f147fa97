// BYOL: online predictor vs EMA target. (methods/byol.h)
#include "methods/byol.h"

#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/ema.h"

namespace siam::methods {

BYOL::BYOL(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options) : Method("BYOL", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.momentum >= 0 && opt_.momentum <= 1, "byol: method.momentum must be in [0, 1], got ", opt_.momentum);
  SIAM_CHECK(opt_.predictor.layers >= 1, "byol: method.predictor.layers must be >= 1");
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
  HeadOptions pred = opt_.predictor;
  predictor_ = register_module("predictor", make_head(opt_.projector.out, pred));
  SIAM_CHECK(pred.out == opt_.projector.out, "byol: method.predictor.out (", pred.out,
             ") must equal method.projector.out (", opt_.projector.out, ")");
  target_encoder_ = register_module("target_encoder", std::make_shared<models::ResNet>(encoder_->config()));
  target_projector_ = register_module("target_projector", make_head(encoder_->feature_dim(), opt_.projector));
  copy_into(*target_encoder_, *encoder_);
  copy_into(*target_projector_, *projector_);
}

double BYOL::momentum_at(const StepInfo& info) const {
  return opt_.cosine_momentum ? optim::cosine_momentum(opt_.momentum, info.step, info.total_steps) : opt_.momentum;
}

LossOutput BYOL::loss(const std::vector<Tensor>& views, const StepInfo& info) {
  check_views(views);
  SIAM_CHECK(views.size() == 2, "byol: uses exactly 2 views, got ", views.size());
  auto p = project(*predictor_, project(*projector_, encode(*encoder_, views)));  // 2 x (B, D)
  std::vector<Tensor> z;
  {
    NoGradGuard ng;
    z = project(*target_projector_, encode(*target_encoder_, views));  // 2 x (B, D), no history
  }
  Tensor l = add(normalized_mse(p[0], z[1]), normalized_mse(p[1], z[0]));
  return {l, {{"tau", momentum_at(info)}}};
}

void BYOL::after_optimizer_step(const StepInfo& info) {
  // The update after step s uses the momentum of step s + 1 (BYOL's schedule over the k-th update).
  StepInfo next = info;
  next.step = info.step + 1;
  const double m = momentum_at(next);
  optim::ema_update(target_encoder_->parameters(), encoder_->parameters(), m);
  optim::ema_update(target_projector_->parameters(), projector_->parameters(), m);
}

}  // namespace siam::methods

// SimSiam: predictor + stop-gradient. (methods/simsiam.h)
#include "methods/simsiam.h"

#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"

namespace siam::methods {

SimSiam::SimSiam(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options)
    : Method("SimSiam", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.predictor.out == opt_.projector.out, "simsiam: method.predictor.out (", opt_.predictor.out,
             ") must equal method.projector.out (", opt_.projector.out, ")");
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
  predictor_ = register_module("predictor", make_head(opt_.projector.out, opt_.predictor));
}

LossOutput SimSiam::loss(const std::vector<Tensor>& views, const StepInfo&) {
  check_views(views);
  SIAM_CHECK(views.size() == 2, "simsiam: uses exactly 2 views, got ", views.size());
  auto z = project(*projector_, encode(*encoder_, views));
  auto p = project(*predictor_, z);
  // normalized_mse = 2 - 2 cos, so -cos = normalized_mse / 2 - 1.
  Tensor s = add(normalized_mse(p[0], z[1].detach()), normalized_mse(p[1], z[0].detach()));
  return {sub(mul(s, 0.25), 1.0), {}};
}

}  // namespace siam::methods

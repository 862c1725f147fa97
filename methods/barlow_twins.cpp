// Barlow Twins: cross-correlation to the identity. (methods/barlow_twins.h)
#include "methods/barlow_twins.h"

#include "engine/ops/siamese.h"

namespace siam::methods {

BarlowTwins::BarlowTwins(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options)
    : Method("BarlowTwins", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.lambda >= 0, "barlow_twins: method.lambda must be >= 0, got ", opt_.lambda);
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
}

LossOutput BarlowTwins::loss(const std::vector<Tensor>& views, const StepInfo&) {
  check_views(views);
  SIAM_CHECK(views.size() == 2, "barlow_twins: uses exactly 2 views, got ", views.size());
  auto z = project(*projector_, encode(*encoder_, views));
  // C over the global batch: the rows of every rank (each rank then holds the global loss).
  return {barlow_twins_loss(gather_rows(z[0]), gather_rows(z[1]), opt_.lambda), {}};
}

}  // namespace siam::methods

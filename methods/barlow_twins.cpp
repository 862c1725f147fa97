// Barlow Twins: cross-correlation to the identity. (methods/barlow_twins.h)
#include "methods/barlow_twins.h"

#include "engine/ops/siamese.h"

namespace siam::methods {

BarlowTwins::BarlowTwins(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options)
    : Method("BarlowTwins", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.lambda >= 0, "barlow_twins: method.lambda must be >= 0, got ", opt_.lambda);
  check_batch_stats("barlow_twins", opt_);
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
}

LossOutput BarlowTwins::loss(const std::vector<Tensor>& views, const StepInfo&) {
  check_views(views);
  SIAM_CHECK(views.size() == 2, "barlow_twins: uses exactly 2 views, got ", views.size());
  auto z = project(*projector_, encode(*encoder_, views));
  // C over the global batch (each rank then holds the global loss): from every rank's rows, or from the
  // all-reduced sums of each rank's (method.batch_stats).
  if (all_reduce_stats())
    return {barlow_twins_loss(z[0], z[1], opt_.lambda, 1e-5, batch_stat_hooks(z[0].size(0))), {}};
  return {barlow_twins_loss(gather_rows(z[0]), gather_rows(z[1]), opt_.lambda), {}};
}

}  // namespace siam::methods

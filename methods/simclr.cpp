// SimCLR: NT-Xent over projected views. (methods/simclr.h)
#include "methods/simclr.h"

#include "engine/ops/elementwise.h"
#include "engine/ops/siamese.h"

namespace siam::methods {

SimCLR::SimCLR(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options)
    : Method("SimCLR", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.temperature > 0, "simclr: method.temperature must be > 0, got ", opt_.temperature);
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
}

LossOutput SimCLR::loss(const std::vector<Tensor>& views, const StepInfo&) {
  check_views(views);
  auto h = encode(*encoder_, views);        // V x (B, F)
  auto z = project(*projector_, h);         // V x (B, D)
  for (auto& zv : z) zv = gather_rows(zv);  // V x (W B, D): every rank's rows are negatives
  if (z.size() == 2) return {nt_xent(z[0], z[1], opt_.temperature), {}};
  return {nt_xent_multi(z, opt_.temperature), {}};
}

}  // namespace siam::methods

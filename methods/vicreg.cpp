// VICReg: invariance + variance + covariance. (methods/vicreg.h)
#include "methods/vicreg.h"

#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"

namespace siam::methods {

VICReg::VICReg(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options)
    : Method("VICReg", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.sim_weight >= 0 && opt_.var_weight >= 0 && opt_.cov_weight >= 0,
             "vicreg: method.sim_weight, var_weight and cov_weight must be >= 0");
  check_batch_stats("vicreg", opt_);
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
}

LossOutput VICReg::loss(const std::vector<Tensor>& views, const StepInfo&) {
  check_views(views);
  SIAM_CHECK(views.size() == 2, "vicreg: uses exactly 2 views, got ", views.size());
  auto z = project(*projector_, encode(*encoder_, views));
  // statistics of the global batch: from every rank's rows, or all-reduced sums (method.batch_stats)
  VicregTerms t = all_reduce_stats() ? vicreg_terms(z[0], z[1], 1e-4, batch_stat_hooks(z[0].size(0)))
                                     : vicreg_terms(gather_rows(z[0]), gather_rows(z[1]));
  Tensor l = add(add(mul(t.invariance, opt_.sim_weight), mul(t.variance, opt_.var_weight)),
                 mul(t.covariance, opt_.cov_weight));
  return {l,
          {{"invariance", t.invariance.item()}, {"variance", t.variance.item()}, {"covariance", t.covariance.item()}}};
}

}  // namespace siam::methods

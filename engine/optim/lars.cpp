#include "engine/optim/lars.h"

#include <algorithm>

#include "engine/ops/elementwise.h"

namespace siam::optim {

LARS::LARS(std::vector<Tensor> params, const LARSOptions& options) : LARS(single_group(std::move(params)), options) {}

LARS::LARS(std::vector<ParamGroupSpec> groups, const LARSOptions& o)
    : Optimizer("LARS", std::move(groups), GroupDefaults{o.lr, o.weight_decay, o.momentum}), opt_(o) {
  SIAM_CHECK(o.eta > 0, "optim::LARS: eta (trust coefficient) must be positive, got ", o.eta);
  if (o.nesterov)
    for (const ParamGroup& g : param_groups())
      SIAM_CHECK(g.momentum > 0, "optim::LARS: nesterov needs momentum > 0 (group '", g.name, "' has ", g.momentum,
                 ")");
}

void LARS::update(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) {
  Tensor d = g;
  double scaled_lr = group.lr;
  if (!group.lars_exclude) {
    if (group.weight_decay != 0) d = add(g, mul(p, group.weight_decay));
    double pn = l2_norm(p), dn = l2_norm(d);
    double trust = pn > 0 && dn > 0 ? opt_.eta * pn / dn : 1.0;
    scaled_lr = opt_.clip_lr ? std::min(trust, group.lr) : group.lr * trust;
  }
  if (group.momentum == 0) {
    p.add_(d, -scaled_lr);
    return;
  }
  auto& st = state(index);
  auto it = st.find("momentum_buffer");
  if (it == st.end()) it = st.emplace("momentum_buffer", zeros_like(p)).first;
  Tensor& v = it->second;
  v.mul_(group.momentum).add_(d, scaled_lr);
  if (opt_.nesterov) {
    p.add_(v, -group.momentum);
    p.add_(d, -scaled_lr);
  } else {
    p.add_(v, -1.0);
  }
}

}  // namespace siam::optim

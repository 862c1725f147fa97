#include "engine/optim/sgd.h"

#include "engine/ops/elementwise.h"

namespace siam::optim {

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options) : SGD(single_group(std::move(params)), options) {}

SGD::SGD(std::vector<ParamGroupSpec> groups, const SGDOptions& o)
    : Optimizer("SGD", std::move(groups), GroupDefaults{o.lr, o.weight_decay, o.momentum}), opt_(o) {
  SIAM_CHECK(o.dampening >= 0 && o.dampening <= 1, "optim::SGD: dampening must be in [0, 1], got ", o.dampening);
  if (o.nesterov) {
    for (const ParamGroup& g : param_groups())
      SIAM_CHECK(g.momentum > 0 && o.dampening == 0, "optim::SGD: nesterov needs momentum > 0 and dampening 0 (group '",
                 g.name, "' has momentum ", g.momentum, ", dampening ", o.dampening, ")");
  }
}

void SGD::update(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) {
  Tensor d = group.weight_decay != 0 ? add(g, mul(p, group.weight_decay)) : g;
  if (group.momentum != 0) {
    auto& st = state(index);
    auto it = st.find("momentum_buffer");
    if (it == st.end()) {
      st["momentum_buffer"] = d.clone();
      it = st.find("momentum_buffer");
    } else {
      it->second.mul_(group.momentum).add_(d, 1.0 - opt_.dampening);
    }
    const Tensor& buf = it->second;
    d = opt_.nesterov ? add(d, mul(buf, group.momentum)) : buf;
  }
  p.add_(d, -group.lr);
}

}  // namespace siam::optim

#include "engine/optim/adamw.h"

#include <cmath>

#include "engine/ops/elementwise.h"

namespace siam::optim {

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : AdamW(single_group(std::move(params)), options) {}

AdamW::AdamW(std::vector<ParamGroupSpec> groups, const AdamWOptions& o)
    : Optimizer("AdamW", std::move(groups), GroupDefaults{o.lr, o.weight_decay, 0.0}), opt_(o) {
  SIAM_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "optim::AdamW: betas must be in [0, 1), got (",
             o.beta1, ", ", o.beta2, ")");
  SIAM_CHECK(o.eps >= 0, "optim::AdamW: eps must be >= 0, got ", o.eps);
}

void AdamW::update(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) {
  auto& st = state(index);
  if (st.find("step") == st.end()) {
    st["step"] = zeros({}, DType::i64);
    st["exp_avg"] = zeros_like(p);
    st["exp_avg_sq"] = zeros_like(p);
  }
  Tensor& step_t = st["step"];
  Tensor& m = st["exp_avg"];
  Tensor& v = st["exp_avg_sq"];
  double t = step_t.item() + 1;
  step_t.fill_(t);

  if (group.weight_decay != 0) p.mul_(1.0 - group.lr * group.weight_decay);
  m.mul_(opt_.beta1).add_(g, 1.0 - opt_.beta1);
  v.mul_(opt_.beta2).add_(square(g), 1.0 - opt_.beta2);
  double bc1 = 1.0 - std::pow(opt_.beta1, t);
  double bc2 = 1.0 - std::pow(opt_.beta2, t);
  Tensor denom = add(div(sqrt(v), std::sqrt(bc2)), opt_.eps);
  p.add_(div(m, denom), -group.lr / bc1);
}

}  // namespace siam::optim

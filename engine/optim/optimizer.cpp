#include "engine/optim/optimizer.h"

#include <cctype>
#include <cmath>
#include <unordered_set>

#include "engine/autograd/node.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

namespace siam::optim {

ParamGroupSpec ParamGroupSpec::from_named(const NamedTensors& named, std::string name) {
  ParamGroupSpec g;
  g.name = std::move(name);
  for (const auto& [n, t] : named) {
    g.param_names.push_back(n);
    g.params.push_back(t);
  }
  return g;
}

std::vector<ParamGroupSpec> single_group(std::vector<Tensor> params) {
  ParamGroupSpec g;
  g.name = "params";
  g.params = std::move(params);
  return {std::move(g)};
}

std::vector<ParamGroupSpec> split_decay_exclude(const NamedTensors& named,
                                                const std::vector<std::string>& exclude_if_name_contains) {
  NamedTensors decay, exclude;
  for (const auto& [n, t] : named) {
    SIAM_CHECK(t.defined(), "optim::split_decay_exclude: parameter '", n, "' is undefined");
    bool ex = t.dim() <= 1;
    for (const auto& s : exclude_if_name_contains) ex |= !s.empty() && n.find(s) != std::string::npos;
    (ex ? exclude : decay).emplace_back(n, t);
  }
  std::vector<ParamGroupSpec> out;
  if (!decay.empty()) out.push_back(ParamGroupSpec::from_named(decay, "decay"));
  if (!exclude.empty()) {
    ParamGroupSpec g = ParamGroupSpec::from_named(exclude, "exclude");
    g.weight_decay = 0.0;
    g.lars_exclude = true;
    out.push_back(std::move(g));
  }
  return out;
}

double l2_norm(const Tensor& t) {
  NoGradGuard ng;
  return std::sqrt(sum(square(t)).item());
}

Optimizer::Optimizer(std::string name, std::vector<ParamGroupSpec> groups, const GroupDefaults& d)
    : name_(std::move(name)) {
  SIAM_CHECK(!groups.empty(), "optim::", name_, ": no parameter groups given");
  std::unordered_set<const TensorImpl*> seen;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    ParamGroupSpec& s = groups[gi];
    std::string where = detail::str_cat("optim::", name_, ": parameter group ", gi,
                                        s.name.empty() ? std::string() : " ('" + s.name + "')");
    SIAM_CHECK(!s.params.empty(), where, " has no parameters");
    SIAM_CHECK(s.param_names.empty() || s.param_names.size() == s.params.size(), where, " has ", s.params.size(),
               " parameters but ", s.param_names.size(), " names");
    for (size_t i = 0; i < s.params.size(); ++i) {
      const Tensor& p = s.params[i];
      std::string what = s.param_names.empty() ? detail::str_cat("parameter ", i)
                                               : detail::str_cat("parameter ", i, " ('", s.param_names[i], "')");
      SIAM_CHECK(p.defined(), where, ": ", what, " is undefined");
      SIAM_CHECK(p.is_leaf(), where, ": ", what, " is not a leaf tensor (it comes from op '",
                 p.is_leaf() ? "" : p.grad_fn()->name(), "'); optimize the leaf it was computed from");
      SIAM_CHECK(p.requires_grad(), where, ": ", what, " of shape ", shape_str(p.shape()),
                 " does not require a gradient");
      SIAM_CHECK(seen.insert(p.impl_ptr().get()).second, where, ": ", what,
                 " appears more than once among the parameter groups");
    }
    ParamGroup g;
    g.name = s.name;
    g.params = std::move(s.params);
    g.param_names = std::move(s.param_names);
    g.lr = s.lr.value_or(d.lr);
    g.lr_scale = d.lr != 0 ? g.lr / d.lr : 1.0;
    g.weight_decay = s.weight_decay.value_or(d.weight_decay);
    g.momentum = s.momentum.value_or(d.momentum);
    g.lars_exclude = s.lars_exclude;
    SIAM_CHECK(g.lr >= 0, where, ": lr must be >= 0, got ", g.lr);
    SIAM_CHECK(g.weight_decay >= 0, where, ": weight_decay must be >= 0, got ", g.weight_decay);
    SIAM_CHECK(g.momentum >= 0 && g.momentum < 1, where, ": momentum must be in [0, 1), got ", g.momentum);
    state_.resize(state_.size() + g.params.size());
    groups_.push_back(std::move(g));
  }
}

void Optimizer::step() {
  NoGradGuard ng;
  size_t index = 0;
  for (const ParamGroup& group : groups_) {
    for (size_t i = 0; i < group.params.size(); ++i, ++index) {
      Tensor p = group.params[i];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      SIAM_CHECK(g.shape() == p.shape(), "optim::", name_, ": gradient of shape ", shape_str(g.shape()),
                 " for parameter ", index, " of shape ", shape_str(p.shape()));
      update(group, index, p, g);
    }
  }
  ++steps_;
}

void Optimizer::zero_grad(bool set_to_none) {
  NoGradGuard ng;
  for (ParamGroup& group : groups_)
    for (Tensor& p : group.params) {
      if (!p.grad().defined()) continue;
      if (set_to_none) {
        p.set_grad(Tensor());
      } else {
        Tensor g = p.grad();
        g.zero_();
      }
    }
}

void Optimizer::set_lr(double lr) {
  SIAM_CHECK(lr >= 0 && std::isfinite(lr), "optim::", name_, "::set_lr: lr must be finite and >= 0, got ", lr);
  for (ParamGroup& g : groups_) g.lr = lr * g.lr_scale;
}

std::map<std::string, Tensor>& Optimizer::state(size_t i) {
  SIAM_CHECK(i < state_.size(), "optim::", name_, "::state: parameter index ", i, " out of range (", state_.size(),
             " parameters)");
  return state_[i];
}

const std::map<std::string, Tensor>& Optimizer::state(size_t i) const { return const_cast<Optimizer*>(this)->state(i); }

NamedTensors Optimizer::named_state() const {
  NamedTensors out;
  for (size_t i = 0; i < state_.size(); ++i)
    for (const auto& [k, t] : state_[i]) out.emplace_back(std::to_string(i) + "." + k, t);
  return out;
}

void Optimizer::load_named_state(const NamedTensors& entries) {
  std::vector<const Tensor*> params;
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) params.push_back(&p);
  for (const auto& [name, t] : entries) {
    size_t dot = name.find('.');
    size_t idx = 0;
    bool ok = dot != std::string::npos && dot > 0 && dot + 1 < name.size();
    for (size_t c = 0; ok && c < dot; ++c) ok = std::isdigit(static_cast<unsigned char>(name[c])) != 0;
    if (ok) idx = std::stoul(name.substr(0, dot));
    SIAM_CHECK(ok, "optim::", name_, "::load_named_state: entry '", name, "' is not '<param index>.<key>'");
    SIAM_CHECK(idx < state_.size(), "optim::", name_, "::load_named_state: entry '", name, "' names parameter ", idx,
               " but there are ", state_.size());
    SIAM_CHECK(t.defined(), "optim::", name_, "::load_named_state: entry '", name, "' is undefined");
    std::string key = name.substr(dot + 1);
    SIAM_CHECK(t.dim() == 0 || t.shape() == params[idx]->shape(), "optim::", name_, "::load_named_state: entry '", name,
               "' has shape ", shape_str(t.shape()), " but parameter ", idx, " has shape ",
               shape_str(params[idx]->shape()));
    NoGradGuard ng;
    // A checkpoint loads on the CPU: the per-element state goes to its parameter's device (a CUDA run resumes),
    // the step counter stays a host scalar (read every step).
    state_[idx][key] = key == "step" ? t.detach().clone() : t.detach().to(params[idx]->device()).clone();
  }
}

}  // namespace siam::optim

#include "engine/nn/module.h"

#include <functional>
#include <unordered_map>
#include <unordered_set>

namespace siam::nn {

namespace {

// "a, b, c" (the first `limit` names, then "... (N in all)").
std::string join_names(const NamedTensors& named, size_t limit = 12) {
  std::string s;
  for (size_t i = 0; i < named.size() && i < limit; ++i) s += (i ? ", " : "") + named[i].first;
  if (named.size() > limit) s += ", ... (" + std::to_string(named.size()) + " in all)";
  return named.empty() ? "none" : s;
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace

const Tensor& Module::none() {
  static const Tensor undefined;
  return undefined;
}

Tensor Module::forward(const Tensor&) {
  SIAM_FAIL(type_name_, ": this module has no single-input forward(const Tensor&)");
}

void Module::check_new_name(const std::string& name, const char* what) const {
  SIAM_CHECK(!name.empty(), type_name_, "::", what, ": the name is empty");
  SIAM_CHECK(name.find('.') == std::string::npos, type_name_, "::", what, ": name '", name,
             "' contains '.' (dots join the names of nested modules)");
  bool taken = false;
  for (const auto& [n, t] : params_) taken |= n == name;
  for (const auto& [n, t] : buffers_) taken |= n == name;
  for (const auto& [n, m] : children_) taken |= n == name;
  SIAM_CHECK(!taken, type_name_, "::", what, ": this module already has a parameter, buffer or child named '", name,
             "'");
}

Tensor& Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name, "register_parameter");
  SIAM_CHECK(t.defined(), type_name_, "::register_parameter: parameter '", name, "' is an undefined tensor");
  SIAM_CHECK(is_floating(t.dtype()), type_name_, "::register_parameter: parameter '", name, "' must be floating, got ",
             dtype_name(t.dtype()));
  if (!t.is_leaf()) t = t.detach();
  t.set_requires_grad(requires_grad);
  params_.emplace_back(name, std::move(t));
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name, "register_buffer");
  SIAM_CHECK(t.defined(), type_name_, "::register_buffer: buffer '", name, "' is an undefined tensor");
  if (t.requires_grad()) t = t.detach();
  buffers_.emplace_back(name, std::move(t));
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name, "register_module");
  SIAM_CHECK(m != nullptr, type_name_, "::register_module: child '", name, "' is null");
  SIAM_CHECK(m.get() != this, type_name_, "::register_module: a module cannot be its own child ('", name, "')");
  children_.emplace_back(name, std::move(m));
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out;
  std::unordered_set<const Module*> seen;
  std::function<void(const Module*, const std::string&)> walk = [&](const Module* m, const std::string& prefix) {
    if (!seen.insert(m).second) return;
    out.emplace_back(prefix, m);
    for (const auto& [n, c] : m->children_) walk(c.get(), join(prefix, n));
  };
  walk(this, "");
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  for (const auto& [n, m] : std::as_const(*this).named_modules()) out.emplace_back(n, const_cast<Module*>(m));
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [n, m] : children_) out.push_back(m);
  return out;
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  auto mods = recurse ? named_modules() : std::vector<std::pair<std::string, const Module*>>{{"", this}};
  for (const auto& [prefix, m] : mods)
    for (const auto& [n, t] : m->params_)
      if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(join(prefix, n), t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  auto mods = recurse ? named_modules() : std::vector<std::pair<std::string, const Module*>>{{"", this}};
  for (const auto& [prefix, m] : mods)
    for (const auto& [n, t] : m->buffers_)
      if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(join(prefix, n), t);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [prefix, m] : named_modules()) {
    for (const auto& [n, t] : m->params_)
      if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(join(prefix, n), t);
    for (const auto& [n, t] : m->buffers_)
      if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(join(prefix, n), t);
  }
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

const Module* Module::resolve(const std::string& dotted, std::string& leaf, const char* fn, const char* what) const {
  const Module* m = this;
  std::string path;
  size_t start = 0;
  for (size_t dot; (dot = dotted.find('.', start)) != std::string::npos; start = dot + 1) {
    std::string part = dotted.substr(start, dot - start);
    const Module* next = nullptr;
    for (const auto& [n, c] : m->children_)
      if (n == part) next = c.get();
    if (next == nullptr) {
      std::string kids;
      for (const auto& [n, c] : m->children_) kids += (kids.empty() ? "" : ", ") + n;
      std::string owner = path.empty() ? "this " + m->type_name_ : "'" + path + "' (" + m->type_name_ + ")";
      SIAM_FAIL(type_name_, "::", fn, ": no ", what, " named '", dotted, "': ", owner, " has no child '", part,
                "' (children: ", kids.empty() ? "none" : kids, ")");
    }
    path = join(path, part);
    m = next;
  }
  leaf = dotted.substr(start);
  return m;
}

Tensor& Module::param(const std::string& name) {
  std::string leaf;
  const Module* m = resolve(name, leaf, "param", "parameter");
  for (auto& [n, t] : const_cast<Module*>(m)->params_)
    if (n == leaf) return t;
  SIAM_FAIL(type_name_, "::param: no parameter named '", name, "' (parameters: ", join_names(named_parameters()), ")");
}

Tensor& Module::buffer(const std::string& name) {
  std::string leaf;
  const Module* m = resolve(name, leaf, "buffer", "buffer");
  for (auto& [n, t] : const_cast<Module*>(m)->buffers_)
    if (n == leaf) return t;
  SIAM_FAIL(type_name_, "::buffer: no buffer named '", name, "' (buffers: ", join_names(named_buffers()), ")");
}

Module& Module::module(const std::string& name) {
  std::string leaf;
  const Module* m = resolve(name, leaf, "module", "module");
  for (auto& [n, c] : m->children_)
    if (n == leaf) return *c;
  std::string kids;
  for (const auto& [n, c] : m->children_) kids += (kids.empty() ? "" : ", ") + n;
  SIAM_FAIL(type_name_, "::module: no module named '", name, "' (", m->type_name_,
            " has children: ", kids.empty() ? "none" : kids, ")");
}

bool Module::has_param(const std::string& name) const {
  for (const auto& [n, t] : named_parameters())
    if (n == name) return true;
  return false;
}

bool Module::has_buffer(const std::string& name) const {
  for (const auto& [n, t] : named_buffers())
    if (n == name) return true;
  return false;
}

Module& Module::train(bool on) {
  for (auto& [n, m] : named_modules()) m->training_ = on;
  return *this;
}

void Module::zero_grad(bool set_to_none) {
  for (auto& [n, p] : named_parameters()) {
    if (!p.grad().defined()) continue;
    if (set_to_none) {
      p.set_grad(Tensor());
    } else {
      NoGradGuard ng;
      Tensor g = p.grad();
      g.zero_();
    }
  }
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

template <class Fn>
void Module::convert(Fn fn, bool floating_only) {
  // One converted tensor per original, so a tensor shared by two modules stays shared.
  std::unordered_map<const TensorImpl*, Tensor> done;
  auto conv = [&](Tensor& t, bool is_param) {
    if (floating_only && !is_floating(t.dtype())) return;
    const TensorImpl* key = t.impl_ptr().get();
    auto it = done.find(key);
    if (it == done.end()) {
      Tensor n = fn(t.detach());
      if (!n.defined()) return;  // already as asked
      if (is_param) n.set_requires_grad(t.requires_grad());
      it = done.emplace(key, n).first;
    }
    t = it->second;
  };
  for (auto& [prefix, m] : named_modules()) {
    for (auto& [n, t] : m->params_) conv(t, true);
    for (auto& [n, t] : m->buffers_) conv(t, false);
  }
}

Module& Module::to(DType dtype) {
  NoGradGuard ng;
  convert([&](const Tensor& t) { return t.dtype() == dtype ? Tensor() : t.to(dtype); }, true);
  return *this;
}

Module& Module::to(Device device) {
  NoGradGuard ng;
  convert([&](const Tensor& t) { return t.device() == device ? Tensor() : t.to(device); }, false);
  return *this;
}

void Module::str_into(std::string& out, const std::string& name, int depth) const {
  out += std::string(2 * depth, ' ') + (name.empty() ? "" : name + ": ") + type_name_ + "(" + extra_repr() + ")\n";
  for (const auto& [n, c] : children_) c->str_into(out, n, depth + 1);
}

std::string Module::str() const {
  std::string out;
  str_into(out, "", 0);
  return out;
}

}  // namespace siam::nn

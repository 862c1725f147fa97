#include "engine/optim/lars.h"

#include <algorithm>
#include <cmath>

#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/fused_step.h"
#include "kernels/cpu/multi_tensor.h"
#include "kernels/cuda/multi_tensor.h"
#include "kernels/cuda/stream.h"

namespace siam::optim {

namespace {

namespace kc = kernels::cpu;
using detail::CudaList;
using detail::fusable;
using detail::last_with_grad;
using detail::same_cuda_device;

}  // namespace

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
  // Left over from a step that threw part-way (a later gradient of the wrong shape): start afresh.
  if (pending_group_ != &group || (!pending_.empty() && index <= pending_.back().index)) pending_.clear();
  pending_group_ = &group;
  const Tensor* buf = nullptr;
  if (group.momentum != 0) {
    auto& st = state(index);
    auto it = st.find("momentum_buffer");
    if (it != st.end()) buf = &it->second;
  }
  const bool fuse =
      fusable(p, buf) && g.device() == p.device() && g.dtype() == p.dtype() && same_cuda_device(pending_, p);
  if (fuse)
    pending_.push_back({index, p, g.contiguous()});
  else
    update_one(group, index, p, g);
  if (last_with_grad(group, p)) {
    flush(group);
    pending_.clear();
  }
}

// One parameter through engine ops (the formulas of lars.h).
void LARS::update_one(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) {
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

namespace {

// The pending parameters of one dtype as pointer arrays.
template <class T> struct Batch {
  std::vector<T*> p, v;
  std::vector<const T*> g;
  std::vector<int64_t> numel;
};

template <class T> void lars_pass(const Batch<T>& b, const ParamGroup& group, const LARSOptions& o) {
  const size_t n = b.numel.size();
  if (n == 0) return;
  const kc::MtPlan plan = kc::mt_plan(b.numel.data(), static_cast<int64_t>(n));
  const double wd = group.lars_exclude ? 0.0 : group.weight_decay;
  std::vector<double> wds(n, wd), slr(n, group.lr);
  if (!group.lars_exclude) {
    std::vector<double> p_sq(n, 0.0), d_sq(n, 0.0);
    kc::mt_lars_norms<T>(plan, wd, b.p.data(), b.g.data(), p_sq.data(), d_sq.data());
    for (size_t i = 0; i < n; ++i) {
      const double pn = std::sqrt(p_sq[i]), dn = std::sqrt(d_sq[i]);
      const double trust = pn > 0 && dn > 0 ? o.eta * pn / dn : 1.0;
      slr[i] = o.clip_lr ? std::min(trust, group.lr) : group.lr * trust;
    }
  }
  kc::MtLarsArgs a;
  a.momentum = group.momentum;
  a.nesterov = o.nesterov;
  kc::mt_lars<T>(plan, a, wds.data(), slr.data(), b.p.data(), b.g.data(), group.momentum != 0 ? b.v.data() : nullptr);
}

}  // namespace

void LARS::flush(const ParamGroup& group) {
  if (pending_.empty()) return;
  Batch<float> b32;
  Batch<double> b64;
  CudaList c32, c64;
  for (Pending& e : pending_) {
    Tensor* buf = nullptr;
    if (group.momentum != 0) {
      auto& st = state(e.index);
      auto it = st.find("momentum_buffer");
      if (it == st.end()) it = st.emplace("momentum_buffer", zeros_like(e.p)).first;
      buf = &it->second;
    }
    if (e.p.numel() == 0) continue;
    if (e.p.is_cuda()) {
      (e.p.dtype() == DType::f32 ? c32 : c64).add(e.p, e.g, buf, false);
      continue;
    }
    if (e.p.dtype() == DType::f32) {
      b32.p.push_back(e.p.data<float>());
      b32.g.push_back(e.g.data<float>());
      b32.v.push_back(buf ? buf->data<float>() : nullptr);
      b32.numel.push_back(e.p.numel());
    } else {
      b64.p.push_back(e.p.data<double>());
      b64.g.push_back(e.g.data<double>());
      b64.v.push_back(buf ? buf->data<double>() : nullptr);
      b64.numel.push_back(e.p.numel());
    }
  }
  lars_pass(b32, group, opt_);
  lars_pass(b64, group, opt_);
  kernels::cuda::MtCudaLarsArgs ca;
  ca.lr = group.lr;
  ca.weight_decay = group.weight_decay;
  ca.momentum = group.momentum;
  ca.eta = opt_.eta;
  ca.nesterov = opt_.nesterov;
  ca.clip_lr = opt_.clip_lr;
  ca.exclude = group.lars_exclude;
  for (const CudaList* c : {&c32, &c64}) {
    if (c->numel.empty()) continue;
    const DType dt = c == &c32 ? DType::f32 : DType::f64;
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(c->device);
                   kernels::cuda::mt_lars(dt, static_cast<int64_t>(c->numel.size()), ca, c->p.data(), c->g.data(),
                                          group.momentum != 0 ? c->buf.data() : nullptr, c->numel.data()));
  }
}

}  // namespace siam::optim

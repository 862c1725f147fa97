#include "engine/optim/sgd.h"

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

// One parameter through engine ops (the formulas of sgd.h).
void SGD::update_one(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) {
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

namespace {

template <class T>
void sgd_pass(const std::vector<T*>& p, const std::vector<const T*>& g, const std::vector<T*>& buf,
              const std::vector<uint8_t>& init, const std::vector<int64_t>& numel, const kc::MtSgdArgs& a) {
  if (numel.empty()) return;
  const kc::MtPlan plan = kc::mt_plan(numel.data(), static_cast<int64_t>(numel.size()));
  kc::mt_sgd<T>(plan, a, p.data(), g.data(), a.momentum != 0 ? buf.data() : nullptr,
                a.momentum != 0 ? init.data() : nullptr);
}

}  // namespace

void SGD::flush(const ParamGroup& group) {
  if (pending_.empty()) return;
  std::vector<float*> p32, b32;
  std::vector<const float*> g32;
  std::vector<double*> p64, b64;
  std::vector<const double*> g64;
  std::vector<uint8_t> i32, i64;
  std::vector<int64_t> n32, n64;
  CudaList c32, c64;
  const bool mom = group.momentum != 0;
  std::vector<size_t> created;  // the parameters whose momentum buffer this pass creates
  for (Pending& e : pending_) {
    Tensor* buf = nullptr;
    bool init = false;
    if (mom) {
      auto& st = state(e.index);
      auto it = st.find("momentum_buffer");
      if (it == st.end()) {
        it = st.emplace("momentum_buffer", empty(e.p.shape(), e.p.options())).first;  // written by the pass
        init = true;
        created.push_back(e.index);
      }
      buf = &it->second;
    }
    if (e.p.numel() == 0) continue;
    if (e.p.is_cuda()) {
      (e.p.dtype() == DType::f32 ? c32 : c64).add(e.p, e.g, buf, init);
      continue;
    }
    if (e.p.dtype() == DType::f32) {
      p32.push_back(e.p.data<float>());
      g32.push_back(e.g.data<float>());
      b32.push_back(buf ? buf->data<float>() : nullptr);
      i32.push_back(init);
      n32.push_back(e.p.numel());
    } else {
      p64.push_back(e.p.data<double>());
      g64.push_back(e.g.data<double>());
      b64.push_back(buf ? buf->data<double>() : nullptr);
      i64.push_back(init);
      n64.push_back(e.p.numel());
    }
  }
  // A pass that fails leaves no buffer behind: one left unwritten would count as initialized at the next step.
  try {
    kc::MtSgdArgs a;
    a.lr = group.lr;
    a.weight_decay = group.weight_decay;
    a.momentum = group.momentum;
    a.dampening = opt_.dampening;
    a.nesterov = opt_.nesterov;
    sgd_pass<float>(p32, g32, b32, i32, n32, a);
    sgd_pass<double>(p64, g64, b64, i64, n64, a);
    kernels::cuda::MtCudaSgdArgs ca;
    ca.lr = a.lr;
    ca.weight_decay = a.weight_decay;
    ca.momentum = a.momentum;
    ca.dampening = a.dampening;
    ca.nesterov = a.nesterov;
    for (const CudaList* c : {&c32, &c64}) {
      if (c->numel.empty()) continue;
      const DType dt = c == &c32 ? DType::f32 : DType::f64;
      SIAM_CUDA_ONLY(cuda::DeviceGuard g(c->device); kernels::cuda::mt_sgd(
                         dt, static_cast<int64_t>(c->numel.size()), ca, c->p.data(), c->g.data(),
                         mom ? c->buf.data() : nullptr, mom ? c->init.data() : nullptr, c->numel.data()));
    }
  } catch (...) {
    for (size_t i : created) state(i).erase("momentum_buffer");
    throw;
  }
}

}  // namespace siam::optim

// Internal to engine/optim: what the fused multi-tensor steps of SGD and LARS share. Optimizer::step() calls
// update() once per parameter; these optimizers collect the parameters of a group and run one fused pass
// (kernels/cpu/multi_tensor.h, kernels/cuda/multi_tensor.h) when update() reaches the group's last parameter
// with a gradient.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/optim/optimizer.h"

namespace siam::optim::detail {

// True when no parameter after p in its group has a gradient: Optimizer::step() calls update() for p last.
inline bool last_with_grad(const ParamGroup& group, const Tensor& p) {
  size_t i = 0;
  while (i < group.params.size() && !group.params[i].same(p)) ++i;
  for (++i; i < group.params.size(); ++i)
    if (group.params[i].grad().defined()) return false;
  return true;
}

// CPU or CUDA (kernels/cuda/multi_tensor.h: one fused pass per device and dtype) parameters.
inline bool fusable(const Tensor& p, const Tensor* buf) {
  const bool ok = p.is_contiguous() && (p.dtype() == DType::f32 || p.dtype() == DType::f64);
  return ok && (!buf || (buf->device() == p.device() && buf->is_contiguous() && buf->dtype() == p.dtype() &&
                         buf->shape() == p.shape()));
}

// CUDA parameters fuse when they are on the device of the CUDA parameters already pending.
template <class P> inline bool same_cuda_device(const std::vector<P>& pending, const Tensor& p) {
  if (!p.is_cuda()) return true;
  for (const P& e : pending)
    if (e.p.is_cuda()) return e.p.device() == p.device();
  return true;
}

// Pointer lists of the pending CUDA parameters of one dtype.
struct CudaList {
  std::vector<void*> p, buf;
  std::vector<const void*> g;
  std::vector<uint8_t> init;
  std::vector<int64_t> numel;
  int device = -1;
  void add(const Tensor& pt, const Tensor& gt, Tensor* b, bool first) {
    device = pt.device().index;
    p.push_back(pt.raw_data());
    g.push_back(gt.raw_data());
    buf.push_back(b ? b->raw_data() : nullptr);
    init.push_back(first);
    numel.push_back(pt.numel());
  }
};

}  // namespace siam::optim::detail

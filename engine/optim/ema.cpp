// Momentum-encoder updates: validation, then one multi-tensor pass per dtype (kernels/cpu/multi_tensor.h).
#include "engine/optim/ema.h"

#include <cmath>
#include <numbers>

#include "engine/ops/dispatch.h"
#include "kernels/cpu/multi_tensor.h"
#include "kernels/cuda/multi_tensor.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"

namespace siam::optim {

namespace kc = kernels::cpu;

double cosine_momentum(double base, int64_t step, int64_t total) {
  SIAM_CHECK(std::isfinite(base) && base >= 0 && base <= 1, "optim::cosine_momentum: base must be in [0, 1], got ",
             base);
  SIAM_CHECK(total > 0, "optim::cosine_momentum: total steps must be positive, got ", total);
  SIAM_CHECK(step >= 0, "optim::cosine_momentum: step must be >= 0, got ", step);
  if (step >= total) return 1.0;
  const double c = std::cos(std::numbers::pi * static_cast<double>(step) / static_cast<double>(total));
  return 1.0 - (1.0 - base) * (c + 1.0) / 2.0;
}

namespace {

// Per-dtype lists of contiguous (target, online) pointers, filled after the pairwise checks.
struct Lists {
  std::vector<Tensor> keep;  // contiguous copies of non-contiguous online tensors
  std::vector<float*> t32;
  std::vector<const float*> o32;
  std::vector<int64_t> n32;
  std::vector<double*> t64;
  std::vector<const double*> o64;
  std::vector<int64_t> n64;
  std::vector<void*> tb;  // copied bytewise
  std::vector<const void*> ob;
  std::vector<int64_t> nb;
};

// Checks the pairs; `ema` routes f32/f64 to the average and integer tensors to the byte copy, otherwise every
// pair is copied bytewise. Only the pairs on the CPU (cuda false) or on CUDA (cuda true; all on one device,
// returned in *device) are listed; every pair is checked either way.
Lists collect(const char* op, const std::vector<Tensor>& target, const std::vector<Tensor>& online, bool ema,
              bool cuda = false, int* device = nullptr) {
  SIAM_CHECK(target.size() == online.size(), op, ": target has ", target.size(), " tensors but online has ",
             online.size());
  Lists l;
  for (size_t i = 0; i < target.size(); ++i) {
    const Tensor& t = target[i];
    const Tensor& o = online[i];
    SIAM_CHECK(t.defined() && o.defined(), op, ": tensor ", i, " is undefined (", t.defined() ? "online" : "target",
               ")");
    SIAM_CHECK(t.shape() == o.shape(), op, ": tensor ", i, " has shape ", shape_str(t.shape()), " in target but ",
               shape_str(o.shape()), " in online");
    SIAM_CHECK(t.dtype() == o.dtype(), op, ": tensor ", i, " is ", dtype_name(t.dtype()), " ", shape_str(t.shape()),
               " in target but ", dtype_name(o.dtype()), " ", shape_str(o.shape()), " in online");
    SIAM_CHECK(t.device() == o.device(), op, ": tensor ", i, " ", shape_str(t.shape()),
               " is on different devices: target on ", t.device().str(), ", online on ", o.device().str());
    if (t.is_cuda() != cuda) continue;
    if (cuda && device) {
      if (*device < 0) *device = t.device().index;
      SIAM_CHECK(t.device().index == *device, op, ": tensor ", i, " ", shape_str(t.shape()), " is on ",
                 t.device().str(), " but earlier CUDA tensors are on cuda:", *device,
                 " (one fused pass per call runs on one device)");
    }
    SIAM_CHECK(t.is_contiguous(), op, ": target tensor ", i, " ", shape_str(t.shape()),
               " is not contiguous (targets are updated in place; pass parameters or buffers)");
    Tensor oc = o.is_contiguous() ? o : o.detach().contiguous();
    if (!o.is_contiguous()) l.keep.push_back(oc);
    if (t.numel() == 0 || t.same(oc)) continue;
    const DType dt = t.dtype();
    if (ema && dt == DType::f32) {
      l.t32.push_back(t.data<float>());
      l.o32.push_back(oc.data<float>());
      l.n32.push_back(t.numel());
    } else if (ema && dt == DType::f64) {
      l.t64.push_back(t.data<double>());
      l.o64.push_back(oc.data<double>());
      l.n64.push_back(t.numel());
    } else {
      SIAM_CHECK(!ema || !is_floating(dt), op, ": tensor ", i, " ", shape_str(t.shape()), " is ", dtype_name(dt),
                 "; the average runs on f32 or f64 tensors (keep momentum encoders in f32)");
      l.tb.push_back(t.raw_data());
      l.ob.push_back(oc.raw_data());
      l.nb.push_back(static_cast<int64_t>(t.nbytes()));
    }
  }
  return l;
}

// The CUDA pairs: f32 and f64 averages in one multi-tensor launch each (kernels/cuda/multi_tensor.h), byte
// copies (integer buffers, copy_params) as device-to-device copies on the current stream.
void cuda_pass(const Lists& l, int device, bool ema, double momentum) {
  if (device < 0) return;
  SIAM_CUDA_ONLY({
    cuda::DeviceGuard g(device);
    if (ema && !l.n32.empty())
      kernels::cuda::mt_ema(DType::f32, static_cast<int64_t>(l.n32.size()), reinterpret_cast<void* const*>(l.t32.data()),
                            reinterpret_cast<const void* const*>(l.o32.data()), l.n32.data(), momentum);
    if (ema && !l.n64.empty())
      kernels::cuda::mt_ema(DType::f64, static_cast<int64_t>(l.n64.size()), reinterpret_cast<void* const*>(l.t64.data()),
                            reinterpret_cast<const void* const*>(l.o64.data()), l.n64.data(), momentum);
    for (size_t i = 0; i < l.nb.size(); ++i)
      cuda::copy_bytes(l.tb[i], true, l.ob[i], true, static_cast<size_t>(l.nb[i]), device, /*synchronous=*/false);
  });
}

void copy_bytes(const Lists& l) {
  if (l.nb.empty()) return;
  // byte chunks of 4x the element chunk: the same 256 KB per chunk as an f32 pass
  const kc::MtPlan plan = kc::mt_plan(l.nb.data(), static_cast<int64_t>(l.nb.size()), 4 * kc::kMtChunkElems);
  kc::mt_copy_bytes(plan, l.tb.data(), l.ob.data());
}

}  // namespace

void ema_update(const std::vector<Tensor>& target, const std::vector<Tensor>& online, double momentum) {
  const char* op = "optim::ema_update";
  SIAM_CHECK(std::isfinite(momentum) && momentum >= 0 && momentum <= 1, op, ": momentum must be in [0, 1], got ",
             momentum);
  NoGradGuard ng;
  int device = -1;
  // Two statements: collect sets `device`, and arguments have no evaluation order (GCC read device first, as
  // -1, and the CUDA pass never ran).
  const Lists cl = collect(op, target, online, /*ema=*/true, /*cuda=*/true, &device);
  cuda_pass(cl, device, /*ema=*/true, momentum);
  Lists l = collect(op, target, online, /*ema=*/true);
  const double om = 1.0 - momentum;
  if (!l.n32.empty()) {
    const kc::MtPlan plan = kc::mt_plan(l.n32.data(), static_cast<int64_t>(l.n32.size()));
    kc::mt_ema<float>(plan, l.t32.data(), l.o32.data(), static_cast<float>(momentum), static_cast<float>(om));
  }
  if (!l.n64.empty()) {
    const kc::MtPlan plan = kc::mt_plan(l.n64.data(), static_cast<int64_t>(l.n64.size()));
    kc::mt_ema<double>(plan, l.t64.data(), l.o64.data(), momentum, om);
  }
  copy_bytes(l);
}

void copy_params(const std::vector<Tensor>& target, const std::vector<Tensor>& online) {
  NoGradGuard ng;
  int device = -1;
  const Lists cl = collect("optim::copy_params", target, online, /*ema=*/false, /*cuda=*/true, &device);
  cuda_pass(cl, device, /*ema=*/false, 0.0);
  copy_bytes(collect("optim::copy_params", target, online, /*ema=*/false));
}

}  // namespace siam::optim

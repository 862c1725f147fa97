// Front-ends of batch_norm and layer_norm: validate, dispatch to the fused kernels of kernels/cpu/norm,
// update running statistics (batch_norm training), record backward. batch_norm on CUDA (f32, f64) runs
// through cuDNN (kernels/cuda/cudnn_norm_pool.h), which updates the running statistics in place with the
// same rule as the CPU (unbiased variance).
#include "engine/ops/norm.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/core/autocast.h"
#include "engine/ops/dispatch.h"
#include "kernels/cpu/norm.h"
#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/cudnn_norm_pool.h"
#include "kernels/cuda/layer_norm.h"
#include "kernels/cuda/stream.h"
#endif

namespace siam {

namespace {

void check_param(const char* op, const char* what, const Tensor& p, const Shape& want, const Tensor& x) {
  if (!p.defined()) return;
  if (x.is_cuda())
    ops::require_same_device(op, x, p);
  else
    ops::require_cpu(op, {p});
  SIAM_CHECK(p.shape() == want, op, ": ", what, " must have shape ", shape_str(want), " for input ",
             shape_str(x.shape()), ", got ", shape_str(p.shape()));
}

// Per-channel parameter as a contiguous tensor of x's dtype, or undefined.
Tensor as_param(const Tensor& p, DType dt) {
  if (!p.defined()) return Tensor();
  Tensor d = p.detach();
  if (d.dtype() != dt) d = d.to(dt);
  return d.contiguous();
}

template <class T> const T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
template <class T> T* mut_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

#if defined(SIAM_WITH_CUDA)
// t as a contiguous tensor of dtype dt (itself when it already is one; undefined stays undefined).
Tensor contiguous_as(const Tensor& t, DType dt) {
  if (!t.defined()) return Tensor();
  if (t.is_contiguous() && t.dtype() == dt) return t.detach();
  return detail::cuda_cast_contiguous(t, dt, "batch_norm");
}
const void* ptr_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
void* mut_ptr_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

Tensor batch_norm_cuda(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps, int64_t N, int64_t C,
                       int64_t L) {
  namespace kc = kernels::cuda;
  const char* op = "batch_norm";
  const DType dt = x.dtype();  // f32 or f64; the per-channel tensors have the same dtype
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, ": CUDA input must be f32 or f64, got ", dtype_name(dt), " ",
             shape_str(x.shape()), " (norms run in f32; under autocast the activations stay f32)");
  const kc::DenseType t = dt == DType::f64 ? kc::DenseType::f64 : kc::DenseType::f32;
  const int dev = x.device().index;
  const Shape cs{C};
  Tensor xc = contiguous_as(x, dt), wc = contiguous_as(weight, dt), bc = contiguous_as(bias, dt);
  Tensor y = empty(x.shape(), x.options());
  Tensor mean, invstd;  // training: the batch's, for backward
  Tensor rm = contiguous_as(running_mean, dt), rv = contiguous_as(running_var, dt);
  {
    detail::DeviceScratch scratch(x.device());
    if (training) {
      mean = empty(cs, x.options()), invstd = empty(cs, x.options());
      kc::batch_norm_train_forward(N, C, L, t, dev, xc.raw_data(), ptr_or_null(wc), ptr_or_null(bc), momentum, eps,
                                   mut_ptr_or_null(rm), mut_ptr_or_null(rv), y.raw_data(), mean.raw_data(),
                                   invstd.raw_data(), scratch.fn());
      // running statistics that were not contiguous dt tensors were updated in a copy: write it back
      NoGradGuard ng;
      if (rm.defined() && rm.storage() != running_mean.storage())
        Tensor(running_mean).copy_(rm);
      if (rv.defined() && rv.storage() != running_var.storage())
        Tensor(running_var).copy_(rv);
    } else {
      kc::batch_norm_eval_forward(N, C, L, t, dev, xc.raw_data(), ptr_or_null(wc), ptr_or_null(bc), rm.raw_data(),
                                  rv.raw_data(), eps, y.raw_data(), scratch.fn());
    }
  }
  if (autograd::needs_grad({x, weight, bias})) {
    Shape xs = x.shape();
    autograd::record(op, y, {x, weight, bias}, [=](const Tensor& gy, const std::vector<bool>& needs) {
      Tensor gyc = contiguous_as(gy, dt);
      Tensor gx, gw, gb;
      if (needs[0]) gx = empty(xs, gyc.options());
      if (needs[1]) gw = empty(cs, gyc.options());
      if (needs[2]) gb = empty(cs, gyc.options());
      detail::DeviceScratch scratch(gy.device());
      if (training)
        kc::batch_norm_train_backward(N, C, L, t, dev, xc.raw_data(), gyc.raw_data(), ptr_or_null(wc), mean.raw_data(),
                                      invstd.raw_data(), eps, mut_ptr_or_null(gx), mut_ptr_or_null(gw),
                                      mut_ptr_or_null(gb), scratch.fn());
      else
        kc::batch_norm_eval_backward(N, C, L, t, dev, xc.raw_data(), gyc.raw_data(), ptr_or_null(wc), rm.raw_data(),
                                     rv.raw_data(), eps, mut_ptr_or_null(gx), mut_ptr_or_null(gw), mut_ptr_or_null(gb));
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return y;
}

// layer_norm on CUDA (kernels/cuda/layer_norm.h): the CPU path's saved state (mean, invstd per row, in dt).
Tensor layer_norm_cuda(const Tensor& x, const Shape& ns, const Tensor& weight, const Tensor& bias, double eps,
                       int64_t R, int64_t D) {
  namespace kc = kernels::cuda;
  const char* op = "layer_norm";
  const DType dt = x.dtype();
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, ": CUDA input must be f32 or f64, got ", dtype_name(dt), " ",
             shape_str(x.shape()));
  const Device dev = x.device();
  cuda::DeviceGuard g(dev.index);
  Tensor xc = contiguous_as(x, dt), wc = contiguous_as(weight, dt), bc = contiguous_as(bias, dt);
  Tensor y = empty(x.shape(), x.options());
  Tensor mean = empty({R}, x.options()), invstd = empty({R}, x.options());
  if (R > 0 && D > 0)
    kc::layer_norm_forward(dt, R, D, xc.raw_data(), ptr_or_null(wc), ptr_or_null(bc), eps, y.raw_data(),
                           mean.raw_data(), invstd.raw_data());
  if (autograd::needs_grad({x, weight, bias})) {
    const Shape xs = x.shape();
    autograd::record(op, y, {x, weight, bias}, [=](const Tensor& gy, const std::vector<bool>& needs) {
      cuda::DeviceGuard dg(dev.index);
      Tensor gyc = contiguous_as(gy, dt);
      Tensor gx, gw, gb;
      if (needs[0]) gx = empty(xs, gyc.options());
      if (needs[1]) gw = zeros(ns, gyc.options());
      if (needs[2]) gb = zeros(ns, gyc.options());
      if (R > 0 && D > 0)
        kc::layer_norm_backward(dt, R, D, xc.raw_data(), gyc.raw_data(), mean.raw_data(), invstd.raw_data(),
                                ptr_or_null(wc), mut_ptr_or_null(gx), mut_ptr_or_null(gw), mut_ptr_or_null(gb));
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return y;
}
#endif

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  SIAM_CHECK(x.defined(), op, ": input is undefined");
  if (!x.is_cuda()) ops::require_cpu(op, {x, running_mean, running_var, weight, bias});
  if (!x.is_cuda() || !ops::kCudaBuild) ops::require_floating(op, x);
  SIAM_CHECK(x.dim() >= 2 && x.dim() <= 4, op, ": input must be (N, C), (N, C, L) or (N, C, H, W), got ",
             shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1), L = x.numel() / std::max<int64_t>(1, N * C);
  const Shape cs{C};
  check_param(op, "weight", weight, cs, x);
  check_param(op, "bias", bias, cs, x);
  check_param(op, "running_mean", running_mean, cs, x);
  check_param(op, "running_var", running_var, cs, x);
  if (weight.defined()) ops::require_same_dtype(op, x, weight);
  if (bias.defined()) ops::require_same_dtype(op, x, bias);
  SIAM_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
  const int64_t M = N * L;
  if (training)
    SIAM_CHECK(M > 1, op, ": training needs more than one value per channel, got input ", shape_str(x.shape()));
  else
    SIAM_CHECK(running_mean.defined() && running_var.defined(), op,
               ": eval mode (training = false) needs running_mean and running_var, input ", shape_str(x.shape()));
#if defined(SIAM_WITH_CUDA)
  if (x.is_cuda()) return batch_norm_cuda(x, running_mean, running_var, weight, bias, training, momentum, eps, N, C, L);
#endif

  const DType dt = x.dtype();
  Tensor xc = x.detach().contiguous();
  Tensor wc = as_param(weight, dt), bc = as_param(bias, dt);
  Tensor y = empty(x.shape(), x.options());
  Tensor mean, invstd;
  if (training) {
    mean = empty(cs, dt), invstd = empty(cs, dt);
    Tensor var = empty(cs, dt);
    SIAM_DISPATCH_FLOAT(dt, op,
                        kernels::cpu::batch_norm_train_forward<scalar_t>(
                            N, C, L, xc.data<scalar_t>(), ptr_or_null<scalar_t>(wc), ptr_or_null<scalar_t>(bc), eps,
                            y.data<scalar_t>(), mean.data<scalar_t>(), var.data<scalar_t>(), invstd.data<scalar_t>()));
    // running = (1 - momentum) * running + momentum * batch statistic (unbiased variance), in place.
    NoGradGuard ng;
    const double unbias = static_cast<double>(M) / static_cast<double>(M - 1);
    if (running_mean.defined()) {
      auto rm = running_mean.to_vector<double>();
      auto bm = mean.to_vector<double>();
      for (int64_t c = 0; c < C; ++c) rm[c] = (1.0 - momentum) * rm[c] + momentum * bm[c];
      Tensor(running_mean).copy_(from_vector(rm, cs, DType::f64));
    }
    if (running_var.defined()) {
      auto rv = running_var.to_vector<double>();
      auto bv = var.to_vector<double>();
      for (int64_t c = 0; c < C; ++c) rv[c] = (1.0 - momentum) * rv[c] + momentum * bv[c] * unbias;
      Tensor(running_var).copy_(from_vector(rv, cs, DType::f64));
    }
  } else {
    mean = as_param(running_mean, dt);
    auto rv = running_var.to_vector<double>();
    for (auto& v : rv) v = 1.0 / std::sqrt(v + eps);
    invstd = from_vector(rv, cs, dt);
    SIAM_DISPATCH_FLOAT(dt, op,
                        kernels::cpu::batch_norm_apply<scalar_t>(N, C, L, xc.data<scalar_t>(), mean.data<scalar_t>(),
                                                                 invstd.data<scalar_t>(), ptr_or_null<scalar_t>(wc),
                                                                 ptr_or_null<scalar_t>(bc), y.data<scalar_t>()));
  }
  if (autograd::needs_grad({x, weight, bias})) {
    Shape xs = x.shape();
    autograd::record(op, y, {x, weight, bias}, [=](const Tensor& gy, const std::vector<bool>& needs) {
      Tensor gyc = gy.contiguous();
      Tensor gx, gw, gb;
      if (needs[0]) gx = empty(xs, gyc.options());
      if (needs[1]) gw = empty(cs, gyc.options());
      if (needs[2]) gb = empty(cs, gyc.options());
      SIAM_DISPATCH_FLOAT(gyc.dtype(), "batch_norm",
                          kernels::cpu::batch_norm_backward<scalar_t>(
                              N, C, L, xc.data<scalar_t>(), gyc.data<scalar_t>(), mean.data<scalar_t>(),
                              invstd.data<scalar_t>(), ptr_or_null<scalar_t>(wc), training, mut_or_null<scalar_t>(gx),
                              mut_or_null<scalar_t>(gw), mut_or_null<scalar_t>(gb)));
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return y;
}

Tensor layer_norm(const Tensor& x, const std::vector<int64_t>& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  SIAM_CHECK(x.defined(), op, ": input is undefined");
  if (!x.is_cuda()) ops::require_cpu(op, {x, weight, bias});
  if (!x.is_cuda() || !ops::kCudaBuild) ops::require_floating(op, x);
  const Shape ns(normalized_shape.begin(), normalized_shape.end());
  const int64_t k = static_cast<int64_t>(ns.size());
  bool ok = k >= 1 && k <= x.dim();
  for (int64_t i = 0; ok && i < k; ++i) ok = x.size(x.dim() - k + i) == ns[i];
  SIAM_CHECK(ok, op, ": normalized_shape ", shape_str(ns), " must be non-empty and match the trailing dims of input ",
             shape_str(x.shape()));
  check_param(op, "weight", weight, ns, x);
  check_param(op, "bias", bias, ns, x);
  if (weight.defined()) ops::require_same_dtype(op, x, weight);
  if (bias.defined()) ops::require_same_dtype(op, x, bias);
  SIAM_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
  const int64_t D = shape_numel(ns), R = D == 0 ? 0 : x.numel() / D;
#if defined(SIAM_WITH_CUDA)
  if (x.is_cuda()) return layer_norm_cuda(x, ns, weight, bias, eps, R, D);
#endif
  const DType dt = x.dtype();
  Tensor xc = x.detach().contiguous();
  Tensor wc = as_param(weight, dt), bc = as_param(bias, dt);
  Tensor y = empty(x.shape(), x.options());
  Tensor mean = empty({R}, dt), invstd = empty({R}, dt);
  SIAM_DISPATCH_FLOAT(dt, op,
                      kernels::cpu::layer_norm_forward<scalar_t>(R, D, xc.data<scalar_t>(), ptr_or_null<scalar_t>(wc),
                                                                 ptr_or_null<scalar_t>(bc), eps, y.data<scalar_t>(),
                                                                 mean.data<scalar_t>(), invstd.data<scalar_t>()));
  if (autograd::needs_grad({x, weight, bias})) {
    Shape xs = x.shape();
    autograd::record(op, y, {x, weight, bias}, [=](const Tensor& gy, const std::vector<bool>& needs) {
      Tensor gyc = gy.contiguous();
      Tensor gx, gw, gb;
      if (needs[0]) gx = empty(xs, gyc.options());
      if (needs[1]) gw = empty(ns, gyc.options());
      if (needs[2]) gb = empty(ns, gyc.options());
      SIAM_DISPATCH_FLOAT(gyc.dtype(), "layer_norm",
                          kernels::cpu::layer_norm_backward<scalar_t>(
                              R, D, xc.data<scalar_t>(), gyc.data<scalar_t>(), mean.data<scalar_t>(),
                              invstd.data<scalar_t>(), ptr_or_null<scalar_t>(wc), mut_or_null<scalar_t>(gx),
                              mut_or_null<scalar_t>(gw), mut_or_null<scalar_t>(gb)));
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return y;
}

}  // namespace siam

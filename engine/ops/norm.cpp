// Front-ends of batch_norm and layer_norm: validate, dispatch to the fused kernels of kernels/cpu/norm,
// update running statistics (batch_norm training), record backward.
#include "engine/ops/norm.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "kernels/cpu/norm.h"

namespace siam {

namespace {

void check_param(const char* op, const char* what, const Tensor& p, const Shape& want, const Tensor& x) {
  if (!p.defined()) return;
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

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  SIAM_CHECK(x.defined(), op, ": input is undefined");
  ops::require_cpu(op, {x, running_mean, running_var, weight, bias});
  ops::require_floating(op, x);
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
  ops::require_cpu(op, {x, weight, bias});
  ops::require_floating(op, x);
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

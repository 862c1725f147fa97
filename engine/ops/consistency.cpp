// Front-ends of the consistency losses: validate, dispatch to kernels/cpu/consistency, record backward.
#include "engine/ops/consistency.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "kernels/cpu/consistency.h"
#include "kernels/cuda/consistency.h"
#include "kernels/cuda/stream.h"
#include "kernels/cuda/xcorr.h"

namespace siam {

namespace {

// allow_cuda: the op has a CUDA kernel (normalized_mse, vicreg_terms); both tensors must then be on one device.
void check_pair(const char* op, const char* na, const Tensor& a, const char* nb, const Tensor& b, int64_t min_rows,
                bool allow_cuda = false) {
  SIAM_CHECK(a.defined(), op, ": ", na, " is undefined");
  SIAM_CHECK(b.defined(), op, ": ", nb, " is undefined");
  if (!allow_cuda) ops::require_cpu(op, {a, b});
  SIAM_CHECK(a.device() == b.device(), op, ": ", na, " and ", nb, " must be on one device, got ", a.device().str(),
             " and ", b.device().str());
  ops::require_floating_or_half(op, a);  // bf16/f16: run on f32 copies (the callers)
  ops::require_floating_or_half(op, b);
  ops::require_same_dtype(op, a, b);
  SIAM_CHECK(a.dim() == 2, op, ": ", na, " must be (N, D), got ", shape_str(a.shape()));
  SIAM_CHECK(a.shape() == b.shape(), op, ": ", na, " and ", nb, " must have the same shape, got ", na, " ",
             shape_str(a.shape()), " and ", nb, " ", shape_str(b.shape()));
  SIAM_CHECK(a.size(0) >= min_rows && a.size(1) >= 1, op, ": needs at least ", min_rows,
             min_rows == 1 ? " sample" : " samples", " and 1 feature, got ", na, " ", shape_str(a.shape()));
}

// normalized_mse on CUDA (kernels/cuda/consistency.h): same saved state as the CPU path; the upstream gradient
// is read on the device.
Tensor normalized_mse_cuda(const Tensor& p, const Tensor& z, const Tensor& pc, const Tensor& zc, const Tensor& stats) {
  const int64_t n = pc.size(0), d = pc.size(1);
  const DType dt = pc.dtype();
  Tensor rows = empty({n}, TensorOptions(DType::f64, pc.device()));  // (N) per-row losses
  Tensor out = empty({}, pc.options());
  SIAM_CUDA_ONLY(cuda::DeviceGuard g(pc.device().index);
                 kernels::cuda::nmse_forward(dt, n, d, pc.raw_data(), zc.raw_data(), stats.raw_data(),
                                             static_cast<double*>(rows.raw_data()), out.raw_data()));
  if (autograd::needs_grad({p, z})) {
    autograd::record("normalized_mse", out, {p, z}, [n, d, dt, pc, zc, stats](const Tensor& g,
                                                                            const std::vector<bool>& need) {
      Tensor gc = g.to(dt).contiguous();                                // device scalar: no host sync
      Tensor dp = need[0] ? empty({n, d}, pc.options()) : Tensor();  // (N, D)
      Tensor dz = need[1] ? empty({n, d}, pc.options()) : Tensor();  // (N, D)
      SIAM_CUDA_ONLY(cuda::DeviceGuard dg(pc.device().index);
                     kernels::cuda::nmse_backward(dt, n, d, gc.raw_data(), pc.raw_data(), zc.raw_data(),
                                                  stats.raw_data(), need[0] ? dp.raw_data() : nullptr,
                                                  need[1] ? dz.raw_data() : nullptr));
      return std::vector<Tensor>{dp, dz};
    });
  }
  return out;
}

// vicreg_terms on CUDA (kernels/cuda/xcorr.h): the column statistics, row sums and the terms on the device, the
// Gram / covariance products through matmul (cuBLASLt); the same saved state and backward as the CPU path, the
// three upstream gradients read on the device.
VicregTerms vicreg_terms_cuda(const Tensor& z1, const Tensor& z2, double eps) {
  const int64_t n = z1.size(0), d = z1.size(1);
  const bool gram_form = n < d;
  const int64_t g = kernels::cpu::vicreg_gram_dim(n, d);
  const DType dt = z1.dtype();
  const Device dev = z1.device();
  Tensor a = z1.detach().contiguous(), b = z2.detach().contiguous();
  Tensor zc1 = empty({n, d}, a.options()), zc2 = empty({n, d}, a.options());  // (N, D) centered
  Tensor stats = empty({4, d}, a.options());                                  // mean1, mean2, var1, var2
  // doubles: var_d1, var_d2 (D each), the invariance rows (N), the Gram rows of each branch (g each)
  Tensor scratch = empty({2 * d + n + 2 * g}, TensorOptions(DType::f64, dev));
  double* sd = static_cast<double*>(scratch.raw_data());
  double *var_d1 = sd, *var_d2 = sd + d, *inv_rows = sd + 2 * d, *rows1 = inv_rows + n, *rows2 = rows1 + g;
  Tensor out = empty({3}, a.options());
  Tensor gram1, gram2;  // (g, g): G = Zc Zc^T when N < D, else C = Zc^T Zc / (N - 1)
  {
    NoGradGuard ng;
    auto st = [&](int k) { return stats.select(0, k).raw_data(); };
    SIAM_CUDA_ONLY(cuda::DeviceGuard dg(dev.index);
                   kernels::cuda::vicreg_center(dt, n, d, a.raw_data(), zc1.raw_data(), st(0), st(2), var_d1);
                   kernels::cuda::vicreg_center(dt, n, d, b.raw_data(), zc2.raw_data(), st(1), st(3), var_d2);
                   kernels::cuda::vicreg_sq_rows(dt, n, d, a.raw_data(), b.raw_data(), false, inv_rows));
    if (gram_form) {
      gram1 = matmul(zc1, zc1.t()).contiguous();
      gram2 = matmul(zc2, zc2.t()).contiguous();
    } else {
      const double inv_nm1 = 1.0 / static_cast<double>(n - 1);
      gram1 = mul(matmul(zc1.t(), zc1), inv_nm1).contiguous();
      gram2 = mul(matmul(zc2.t(), zc2), inv_nm1).contiguous();
    }
    SIAM_CUDA_ONLY(cuda::DeviceGuard dg(dev.index);
                   kernels::cuda::vicreg_sq_rows(dt, g, g, gram1.raw_data(), nullptr, !gram_form, rows1);
                   kernels::cuda::vicreg_sq_rows(dt, g, g, gram2.raw_data(), nullptr, !gram_form, rows2);
                   kernels::cuda::vicreg_finish(dt, n, d, g, gram_form, eps, inv_rows, rows1, rows2, var_d1, var_d2,
                                                out.raw_data()));
  }
  if (autograd::needs_grad({z1, z2})) {
    autograd::record("vicreg_terms", out, {z1, z2},
                     [n, d, dt, eps, gram_form, zc1, zc2, stats, gram1, gram2](const Tensor& gr,
                                                                              const std::vector<bool>& need) {
                       NoGradGuard ng;
                       Tensor gc = gr.to(dt).contiguous();  // (3) on the device: no host sync
                       const double dd = static_cast<double>(d), nm1 = static_cast<double>(n - 1);
                       const double cov_scale = gram_form ? 4.0 / (dd * nm1 * nm1) : 4.0 / (dd * nm1);
                       std::vector<Tensor> grads(2);
                       for (int br = 0; br < 2; ++br) {
                         if (!need[static_cast<size_t>(br)]) continue;
                         const Tensor& zc = br == 0 ? zc1 : zc2;
                         const Tensor& gram = br == 0 ? gram1 : gram2;
                         Tensor p = (gram_form ? matmul(gram, zc) : matmul(zc, gram)).contiguous();  // (N, D)
                         const void* var = stats.select(0, 2 + br).raw_data();
                         const void* diag = gram_form ? var : gram.raw_data();
                         SIAM_CUDA_ONLY(cuda::DeviceGuard dg(zc.device().index);
                                        kernels::cuda::vicreg_backward_rows(
                                            dt, n, d, br, eps, cov_scale, gc.raw_data(), zc1.raw_data(),
                                            zc2.raw_data(), stats.select(0, 0).raw_data(),
                                            stats.select(0, 1).raw_data(), var, diag, gram_form ? 1 : d + 1,
                                            p.raw_data()));
                         grads[static_cast<size_t>(br)] = p;
                       }
                       return grads;
                     });
  }
  return {out.select(0, 0), out.select(0, 1), out.select(0, 2)};
}

}  // namespace

Tensor normalized_mse(const Tensor& p, const Tensor& z) {
  const char* op = "normalized_mse";
  check_pair(op, "p", p, "z", z, 1, /*allow_cuda=*/true);
  if (ops::is_half(p.dtype())) return normalized_mse(p.to(DType::f32), z.to(DType::f32));
  const int64_t n = p.size(0), d = p.size(1);
  Tensor pc = p.detach().contiguous(), zc = z.detach().contiguous();
  Tensor stats = empty({n, 3}, p.options());  // (N, 3): |p_i|, |z_i|, cos_i
  if (p.device().is_cuda()) return normalized_mse_cuda(p, z, pc, zc, stats);
  double loss = 0;
  SIAM_DISPATCH_FLOAT(pc.dtype(), op,
                      loss = kernels::cpu::nmse_forward<scalar_t>(n, d, pc.data<scalar_t>(), zc.data<scalar_t>(),
                                                                  stats.data<scalar_t>()));
  Tensor out = full({}, loss, p.options());
  if (autograd::needs_grad({p, z})) {
    autograd::record(op, out, {p, z}, [n, d, pc, zc, stats](const Tensor& g, const std::vector<bool>& need) {
      Tensor dp = need[0] ? empty({n, d}, pc.options()) : Tensor();  // (N, D)
      Tensor dz = need[1] ? empty({n, d}, pc.options()) : Tensor();  // (N, D)
      SIAM_DISPATCH_FLOAT(
          pc.dtype(), "normalized_mse",
          kernels::cpu::nmse_backward<scalar_t>(
              n, d, static_cast<scalar_t>(g.item()), pc.data<scalar_t>(), zc.data<scalar_t>(), stats.data<scalar_t>(),
              need[0] ? dp.data<scalar_t>() : nullptr, need[1] ? dz.data<scalar_t>() : nullptr));
      return std::vector<Tensor>{dp, dz};
    });
  }
  return out;
}

VicregTerms vicreg_terms(const Tensor& z1, const Tensor& z2, double eps, const BatchStatHooks& hooks) {
  const char* op = "vicreg_terms";
  check_pair(op, "z1", z1, "z2", z2, 1, /*allow_cuda=*/true);
  check_batch_stat_hooks(op, z1, hooks);
  SIAM_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
  if (ops::is_half(z1.dtype())) return vicreg_terms(z1.to(DType::f32), z2.to(DType::f32), eps, hooks);
  const auto& total = hooks.all_reduce_sum;
  const double n = static_cast<double>(hooks.global_batch);
  const int64_t d = z1.size(1);
  VicregTerms t;
  t.invariance = div(total(sum(square(sub(z1, z2)))), n * static_cast<double>(d));
  Tensor m = div(total(cat({sum(z1, {0}), sum(z2, {0})}, 0)), n);  // (2D) the means of both views
  Tensor c1 = sub(z1, m.narrow(0, 0, d)), c2 = sub(z2, m.narrow(0, d, d));
  Tensor var = div(total(cat({sum(square(c1), {0}), sum(square(c2), {0})}, 0)), n - 1);  // (2D) unbiased
  t.variance = div(sum(relu(rsub(1.0, sqrt(add(var, eps))))), 2.0 * static_cast<double>(d));
  Tensor cov = div(total(cat({matmul(c1.t(), c1), matmul(c2.t(), c2)}, 0)), n - 1);  // (2D, D): both views'
  Tensor off = rsub(1.0, eye(d, TensorOptions(cov.dtype(), cov.device())));
  t.covariance = div(sum(square(mul(cov, cat({off, off}, 0)))), static_cast<double>(d));
  return t;
}

VicregTerms vicreg_terms(const Tensor& z1, const Tensor& z2, double eps) {
  const char* op = "vicreg_terms";
  check_pair(op, "z1", z1, "z2", z2, 2, /*allow_cuda=*/true);
  SIAM_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
  if (ops::is_half(z1.dtype())) return vicreg_terms(z1.to(DType::f32), z2.to(DType::f32), eps);
  if (z1.device().is_cuda()) return vicreg_terms_cuda(z1, z2, eps);
  const int64_t n = z1.size(0), d = z1.size(1), g = kernels::cpu::vicreg_gram_dim(n, d);
  Tensor a = z1.detach().contiguous(), b = z2.detach().contiguous();
  Tensor zc1 = empty({n, d}, z1.options()), zc2 = empty({n, d}, z1.options());      // (N, D) centered
  Tensor stats = empty({4, d}, z1.options());                                       // mean1, mean2, var1, var2
  Tensor gram1 = empty({g, g}, z1.options()), gram2 = empty({g, g}, z1.options());  // N < D: Zc Zc^T; else C
  kernels::cpu::VicregValues v;
  SIAM_DISPATCH_FLOAT(a.dtype(), op, {
    scalar_t* st = stats.data<scalar_t>();
    v = kernels::cpu::vicreg_forward<scalar_t>(n, d, a.data<scalar_t>(), b.data<scalar_t>(), eps, zc1.data<scalar_t>(),
                                               zc2.data<scalar_t>(), st, st + d, st + 2 * d, st + 3 * d,
                                               gram1.data<scalar_t>(), gram2.data<scalar_t>());
  });
  Tensor out = from_vector({v.invariance, v.variance, v.covariance}, {3}, z1.options());  // (3)
  if (autograd::needs_grad({z1, z2})) {
    autograd::record(
        op, out, {z1, z2}, [n, d, eps, zc1, zc2, stats, gram1, gram2](const Tensor& gr, const std::vector<bool>& need) {
          const std::vector<double> gv = gr.to_vector<double>();
          const double grad[3] = {gv[0], gv[1], gv[2]};
          Tensor d1 = need[0] ? empty({n, d}, zc1.options()) : Tensor();  // (N, D)
          Tensor d2 = need[1] ? empty({n, d}, zc1.options()) : Tensor();  // (N, D)
          SIAM_DISPATCH_FLOAT(zc1.dtype(), "vicreg_terms", {
            const scalar_t* st = stats.data<scalar_t>();
            kernels::cpu::vicreg_backward<scalar_t>(n, d, eps, grad, zc1.data<scalar_t>(), zc2.data<scalar_t>(), st,
                                                    st + d, st + 2 * d, st + 3 * d, gram1.data<scalar_t>(),
                                                    gram2.data<scalar_t>(), need[0] ? d1.data<scalar_t>() : nullptr,
                                                    need[1] ? d2.data<scalar_t>() : nullptr);
          });
          return std::vector<Tensor>{d1, d2};
        });
  }
  return {out.select(0, 0), out.select(0, 1), out.select(0, 2)};
}

}  // namespace siam

// Front-end of batch whitening: validate, dispatch to kernels/cpu/whiten (CUDA: engine ops on the device, below),
// record backward.
#include "engine/ops/whiten.h"

#include <cmath>
#include <vector>

#include "engine/autograd/node.h"
#include "engine/core/autocast.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/whiten.h"

namespace siam {

namespace {

void check_pivot(const char* op, const Tensor& x, double eps, const kernels::cpu::WhitenPivot& piv) {
  const int64_t m = x.size(0), d = x.size(1);
  SIAM_CHECK(piv.index < 0, op, ": the covariance of x ", shape_str(x.shape()), " (D = ", d, " features, M = ", m,
             " samples, eps = ", eps, ") is not positive definite: Cholesky pivot ", piv.index, " of ", d, " is ",
             piv.pivot, " (Sigma[", piv.index, ", ", piv.index, "] = ", piv.diag,
             "); a constant or linearly dependent feature? Use eps > 0 (shrinkage) or more samples");
}

// Whitening on CUDA: the CPU path's math as engine ops on the device (every M x D x D and D x D x D product
// through cuBLASLt), differentiated by autograd. The D x D covariance makes one trip to the host for the
// pivot check, which for Cholesky also yields W = L^{-1} (LAPACK, in double), copied back as a node whose
// backward is dSigma = -W^T Phi(dW W^T) W (kernels/cpu/whiten.h; Phi: the lower triangle, diagonal halved).
// Newton-Schulz runs wholly on the device: the host only checks the pivots, as on the CPU.
Tensor whiten_cuda(const char* op, const Tensor& x, double eps, bool ns, int ns_iters) {
  const int64_t m = x.size(0), d = x.size(1);
  AutocastGuard exact(DType::bf16, false);  // the covariance and its factor in x's dtype, as on the CPU
  const TensorOptions opts(x.dtype(), x.device());
  const Tensor id = eye(d, opts);
  Tensor xc = sub(x, mean(x, {0}, true));                                          // (M, D)
  Tensor sigma = add(div(matmul(xc.t(), xc), static_cast<double>(m - 1)), mul(id, eps));  // (D, D)
  Tensor host = sigma.detach().to(kCPU).to(DType::f64).contiguous();
  std::vector<double> w(ns ? 0 : static_cast<size_t>(d * d));  // Cholesky: W = L^{-1}
  kernels::cpu::WhitenPivot piv;
  SIAM_DISPATCH_FLOAT(x.dtype(), op,
                      piv = ns ? kernels::cpu::whiten_pivot_check<scalar_t>(d, host.data<double>())
                               : kernels::cpu::whiten_inverse_factor<scalar_t>(d, host.data<double>(), w.data()));
  check_pivot(op, x, eps, piv);
  Tensor wt;  // W (D, D)
  if (ns) {
    Tensor s = sum(mul(sigma, id));                  // tr(Sigma), shape []
    Tensor sn = div(sigma, s);                       // (D, D)
    Tensor p = mul(sub(mul(id, 3.0), sn), 0.5);      // P_1 = (3 I - Sn) / 2
    for (int k = 1; k < ns_iters; ++k)               // P_{k+1} = (3 P_k - P_k^3 Sn) / 2
      p = mul(sub(mul(p, 3.0), matmul(matmul(matmul(p, p), p), sn)), 0.5);
    wt = div(p, sqrt(s));
  } else {
    wt = from_vector(w, {d, d}, TensorOptions(x.dtype())).to(x.device());
    if (autograd::needs_grad({sigma})) {
      std::vector<double> phi(static_cast<size_t>(d * d), 0.0);
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j <= i; ++j) phi[static_cast<size_t>(i * d + j)] = i == j ? 0.5 : 1.0;
      Tensor mask = from_vector(phi, {d, d}, TensorOptions(x.dtype())).to(x.device());
      wt = autograd::record("whiten", wt, {sigma}, [wd = wt.detach(), mask](const Tensor& g, const std::vector<bool>&) {
        NoGradGuard ng;
        Tensor f = mul(matmul(g, wd.t()), mask);  // Phi(dW W^T)
        return std::vector<Tensor>{mul(matmul(matmul(wd.t(), f), wd), -1.0)};
      });
    }
  }
  return matmul(xc, wt.t());  // Y = Xc W^T
}

}  // namespace

Tensor whiten(const Tensor& x, double eps, WhitenAlgo algo, int ns_iters) {
  const char* op = "whiten";
  SIAM_CHECK(x.defined(), op, ": x is undefined");
  ops::require_floating_or_half(op, x);
  SIAM_CHECK(x.dim() == 2, op, ": x must be (M, D) (samples, features), got ", shape_str(x.shape()));
  const int64_t m = x.size(0), d = x.size(1);
  SIAM_CHECK(d >= 1 && m >= 2, op, ": needs at least 2 samples and 1 feature, got x ", shape_str(x.shape()));
  SIAM_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps (shrinkage) must be finite and >= 0, got ", eps);
  SIAM_CHECK(eps > 0 || m > d, op, ": without shrinkage (eps = 0) the covariance of M samples has rank < M, so ",
             "whitening needs more samples than features (M > D), got x ", shape_str(x.shape()), " (M = ", m,
             ", D = ", d, "); use a larger batch, fewer features or eps > 0");
  const bool ns = algo == WhitenAlgo::newton_schulz;
  SIAM_CHECK(!ns || ns_iters >= 1, op, ": ns_iters must be >= 1 for Newton-Schulz, got ", ns_iters);
  // bf16/f16 rows: whitened in f32, returned in their dtype (both casts carry the gradient)
  if (ops::is_half(x.dtype())) return whiten(x.to(DType::f32), eps, algo, ns_iters).to(x.dtype());
  if (x.is_cuda()) return whiten_cuda(op, x, eps, ns, ns_iters);
  Tensor xin = x.detach().contiguous();
  Tensor xc = empty({m, d}, x.options());  // (M, D) centered x
  Tensor y = empty({m, d}, x.options());   // (M, D)
  Tensor w, sn, p;                         // cholesky: w (D, D); newton_schulz: sn (D, D), p (iters, D, D)
  double trace = 0;
  kernels::cpu::WhitenPivot piv;
  if (ns) {
    sn = empty({d, d}, x.options());
    p = empty({ns_iters, d, d}, x.options());
  } else {
    w = empty({d, d}, x.options());
  }
  SIAM_DISPATCH_FLOAT(x.dtype(), op, {
    if (ns)
      piv = kernels::cpu::whiten_ns_forward<scalar_t>(m, d, xin.data<scalar_t>(), eps, ns_iters, xc.data<scalar_t>(),
                                                      sn.data<scalar_t>(), p.data<scalar_t>(), &trace,
                                                      y.data<scalar_t>());
    else
      piv = kernels::cpu::whiten_cholesky_forward<scalar_t>(m, d, xin.data<scalar_t>(), eps, xc.data<scalar_t>(),
                                                            w.data<scalar_t>(), y.data<scalar_t>());
  });
  check_pivot(op, x, eps, piv);
  if (autograd::needs_grad({x})) {
    autograd::record(op, y, {x}, [m, d, ns, ns_iters, trace, xc, w, sn, p](const Tensor& g, const std::vector<bool>&) {
      Tensor gc = g.contiguous();
      Tensor dx = empty({m, d}, xc.options());  // (M, D)
      SIAM_DISPATCH_FLOAT(xc.dtype(), "whiten", {
        if (ns)
          kernels::cpu::whiten_ns_backward<scalar_t>(m, d, ns_iters, gc.data<scalar_t>(), xc.data<scalar_t>(),
                                                     sn.data<scalar_t>(), p.data<scalar_t>(), trace,
                                                     dx.data<scalar_t>());
        else
          kernels::cpu::whiten_cholesky_backward<scalar_t>(m, d, gc.data<scalar_t>(), xc.data<scalar_t>(),
                                                           w.data<scalar_t>(), dx.data<scalar_t>());
      });
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

}  // namespace siam

// Front-end of batch whitening: validate, dispatch to kernels/cpu/whiten, record backward.
#include "engine/ops/whiten.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "kernels/cpu/whiten.h"

namespace siam {

Tensor whiten(const Tensor& x, double eps, WhitenAlgo algo, int ns_iters) {
  const char* op = "whiten";
  SIAM_CHECK(x.defined(), op, ": x is undefined");
  ops::require_cpu(op, {x});
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
  SIAM_CHECK(piv.index < 0, op, ": the covariance of x ", shape_str(x.shape()), " (D = ", d, " features, M = ", m,
             " samples, eps = ", eps, ") is not positive definite: Cholesky pivot ", piv.index, " of ", d, " is ",
             piv.pivot, " (Sigma[", piv.index, ", ", piv.index, "] = ", piv.diag,
             "); a constant or linearly dependent feature? Use eps > 0 (shrinkage) or more samples");
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

// Front-ends of the fused siamese losses: validate, dispatch to kernels/cpu/{infonce,xcorr}, record backward.
#include "engine/ops/siamese.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "kernels/cpu/infonce.h"
#include "kernels/cpu/xcorr.h"

namespace siam {

namespace {

void check_matrix(const char* op, const char* what, const Tensor& t) {
  SIAM_CHECK(t.defined(), op, ": ", what, " is undefined");
  ops::require_cpu(op, {t});
  ops::require_floating(op, t);
  SIAM_CHECK(t.dim() == 2, op, ": ", what, " must be (N, D), got ", shape_str(t.shape()));
}

void check_temperature(const char* op, double t) {
  SIAM_CHECK(std::isfinite(t) && t > 0, op, ": temperature must be a positive finite number, got ", t);
}

// Rows of `x` (n, d) as a contiguous tensor of its dtype, normalized when asked (rnorm receives 1/|x|).
Tensor prepare_rows(const Tensor& x, bool normalize, Tensor* rnorm) {
  Tensor xc = x.detach().contiguous();
  if (!normalize) return xc;
  Tensor z = empty(xc.shape(), xc.options());
  Tensor rn = empty({xc.size(0)}, xc.options());
  SIAM_DISPATCH_FLOAT(xc.dtype(), "infonce",
                      kernels::cpu::infonce_normalize_rows<scalar_t>(xc.size(0), xc.size(1), xc.data<scalar_t>(),
                                                                     z.data<scalar_t>(), rn.data<scalar_t>()));
  if (rnorm) *rnorm = rn;
  return z;
}

}  // namespace

Tensor nt_xent(const Tensor& z1, const Tensor& z2, double temperature, bool normalize) {
  const char* op = "nt_xent";
  check_matrix(op, "z1", z1);
  check_matrix(op, "z2", z2);
  ops::require_same_dtype(op, z1, z2);
  SIAM_CHECK(z1.shape() == z2.shape(), op, ": the two views must have the same shape, got z1 ", shape_str(z1.shape()),
             " and z2 ", shape_str(z2.shape()));
  SIAM_CHECK(z1.size(0) >= 1 && z1.size(1) >= 1, op, ": needs at least one sample and one feature, got ",
             shape_str(z1.shape()));
  check_temperature(op, temperature);
  const int64_t n = z1.size(0), d = z1.size(1);
  Tensor x = empty({2 * n, d}, z1.options());  // (2N, D) rows [z1; z2]
  x.narrow(0, 0, n).copy_(z1.detach());
  x.narrow(0, n, n).copy_(z2.detach());
  Tensor rnorm;
  Tensor z = prepare_rows(x, normalize, &rnorm);  // (2N, D)
  kernels::cpu::InfonceArgs args;
  args.rows = 2 * n;
  args.cols = 2 * n;
  args.dim = d;
  args.pos_offset = n;
  args.self = true;
  args.temperature = temperature;
  Tensor lse = empty({2 * n}, z1.options());  // (2N)
  double loss = 0;
  SIAM_DISPATCH_FLOAT(z.dtype(), op,
                      loss = kernels::cpu::infonce_forward<scalar_t>(args, z.data<scalar_t>(), nullptr, nullptr,
                                                                     lse.data<scalar_t>()));
  Tensor out = full({}, loss, z1.options());
  if (autograd::needs_grad({z1, z2})) {
    autograd::record(op, out, {z1, z2},
                     [args, z, lse, rnorm, normalize, n](const Tensor& g, const std::vector<bool>& need) {
                       Tensor dz = empty(z.shape(), z.options());  // (2N, D)
                       SIAM_DISPATCH_FLOAT(z.dtype(), "nt_xent", {
                         const scalar_t gv = static_cast<scalar_t>(g.item());
                         kernels::cpu::infonce_backward<scalar_t>(args, gv, z.data<scalar_t>(), nullptr, nullptr,
                                                                  lse.data<scalar_t>(), dz.data<scalar_t>());
                         if (normalize)
                           kernels::cpu::infonce_normalize_backward<scalar_t>(
                               args.rows, args.dim, z.data<scalar_t>(), rnorm.data<scalar_t>(), dz.data<scalar_t>(),
                               dz.data<scalar_t>());
                       });
                       return std::vector<Tensor>{need[0] ? dz.narrow(0, 0, n) : Tensor(),
                                                  need[1] ? dz.narrow(0, n, n) : Tensor()};
                     });
  }
  return out;
}

Tensor moco_infonce(const Tensor& q, const Tensor& k, const Tensor& queue, double temperature, bool normalize) {
  const char* op = "moco_infonce";
  check_matrix(op, "q", q);
  check_matrix(op, "k", k);
  check_matrix(op, "queue", queue);
  ops::require_same_dtype(op, q, k);
  ops::require_same_dtype(op, q, queue);
  SIAM_CHECK(q.shape() == k.shape(), op, ": queries and keys must have the same shape, got q ", shape_str(q.shape()),
             " and k ", shape_str(k.shape()));
  SIAM_CHECK(queue.size(1) == q.size(1), op, ": queue ", shape_str(queue.shape()),
             " must have the feature dim of q ", shape_str(q.shape()));
  SIAM_CHECK(q.size(0) >= 1 && q.size(1) >= 1, op, ": needs at least one query and one feature, got q ",
             shape_str(q.shape()));
  check_temperature(op, temperature);
  Tensor rnorm;
  Tensor zq = prepare_rows(q, normalize, &rnorm);                        // (N, D)
  Tensor zk = prepare_rows(k, normalize, nullptr);                       // (N, D), no gradient
  Tensor zc = queue.size(0) > 0 ? prepare_rows(queue, normalize, nullptr) : queue.detach().contiguous();  // (K, D)
  kernels::cpu::InfonceArgs args;
  args.rows = q.size(0);
  args.cols = queue.size(0);
  args.dim = q.size(1);
  args.self = false;
  args.temperature = temperature;
  Tensor lse = empty({args.rows}, q.options());  // (N)
  double loss = 0;
  SIAM_DISPATCH_FLOAT(zq.dtype(), op,
                      loss = kernels::cpu::infonce_forward<scalar_t>(args, zq.data<scalar_t>(), zk.data<scalar_t>(),
                                                                     zc.data<scalar_t>(), lse.data<scalar_t>()));
  Tensor out = full({}, loss, q.options());
  if (autograd::needs_grad({q})) {
    autograd::record(op, out, {q}, [args, zq, zk, zc, lse, rnorm, normalize](const Tensor& g, const std::vector<bool>&) {
      Tensor dq = empty(zq.shape(), zq.options());  // (N, D)
      SIAM_DISPATCH_FLOAT(zq.dtype(), "moco_infonce", {
        const scalar_t gv = static_cast<scalar_t>(g.item());
        kernels::cpu::infonce_backward<scalar_t>(args, gv, zq.data<scalar_t>(), zk.data<scalar_t>(),
                                                 zc.data<scalar_t>(), lse.data<scalar_t>(), dq.data<scalar_t>());
        if (normalize)
          kernels::cpu::infonce_normalize_backward<scalar_t>(args.rows, args.dim, zq.data<scalar_t>(),
                                                             rnorm.data<scalar_t>(), dq.data<scalar_t>(),
                                                             dq.data<scalar_t>());
      });
      return std::vector<Tensor>{dq};
    });
  }
  return out;
}

Tensor barlow_twins_loss(const Tensor& z1, const Tensor& z2, double lambda, double eps) {
  const char* op = "barlow_twins_loss";
  check_matrix(op, "z1", z1);
  check_matrix(op, "z2", z2);
  ops::require_same_dtype(op, z1, z2);
  SIAM_CHECK(z1.shape() == z2.shape(), op, ": the two views must have the same shape, got z1 ", shape_str(z1.shape()),
             " and z2 ", shape_str(z2.shape()));
  SIAM_CHECK(z1.size(0) >= 2 && z1.size(1) >= 1, op, ": batch standardization needs at least 2 samples and 1 feature, got ",
             shape_str(z1.shape()));
  SIAM_CHECK(std::isfinite(lambda) && lambda >= 0, op, ": lambda must be finite and >= 0, got ", lambda);
  SIAM_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
  const int64_t n = z1.size(0), d = z1.size(1);
  Tensor x1 = z1.detach().contiguous(), x2 = z2.detach().contiguous();
  Tensor zh1 = empty({n, d}, z1.options()), zh2 = empty({n, d}, z1.options());  // (N, D)
  Tensor r1 = empty({d}, z1.options()), r2 = empty({d}, z1.options());          // (D)
  Tensor c = empty({d, d}, z1.options());                                        // (D, D)
  double loss = 0;
  SIAM_DISPATCH_FLOAT(x1.dtype(), op,
                      loss = kernels::cpu::xcorr_forward<scalar_t>(n, d, x1.data<scalar_t>(), x2.data<scalar_t>(),
                                                                   lambda, eps, zh1.data<scalar_t>(),
                                                                   zh2.data<scalar_t>(), r1.data<scalar_t>(),
                                                                   r2.data<scalar_t>(), c.data<scalar_t>()));
  Tensor out = full({}, loss, z1.options());
  if (autograd::needs_grad({z1, z2})) {
    autograd::record(op, out, {z1, z2}, [n, d, lambda, zh1, zh2, r1, r2, c](const Tensor& g, const std::vector<bool>& need) {
      Tensor d1 = empty({n, d}, zh1.options()), d2 = empty({n, d}, zh1.options());  // (N, D)
      SIAM_DISPATCH_FLOAT(zh1.dtype(), "barlow_twins_loss",
                          kernels::cpu::xcorr_backward<scalar_t>(
                              n, d, static_cast<scalar_t>(g.item()), lambda, zh1.data<scalar_t>(),
                              zh2.data<scalar_t>(), r1.data<scalar_t>(), r2.data<scalar_t>(), c.data<scalar_t>(),
                              d1.data<scalar_t>(), d2.data<scalar_t>()));
      return std::vector<Tensor>{need[0] ? d1 : Tensor(), need[1] ? d2 : Tensor()};
    });
  }
  return out;
}

}  // namespace siam

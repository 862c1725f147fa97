// Front-ends of the fused siamese losses: validate, dispatch to kernels/cpu/{infonce,xcorr} or
// kernels/cuda/{infonce,xcorr}, record backward.
#include "engine/ops/siamese.h"

#include <cmath>
#include <limits>
#include <map>

#include "engine/autograd/node.h"
#include "engine/core/autocast.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "kernels/cpu/infonce.h"
#include "kernels/cpu/xcorr.h"
#include "kernels/cuda/infonce.h"
#include "kernels/cuda/loss.h"
#include "kernels/cuda/stream.h"
#include "kernels/cuda/xcorr.h"

namespace siam {

namespace {

// allow_half: bf16/f16 inputs are accepted and computed in f32 (compute_dtype).
// allow_cuda: the op has a CUDA kernel (every InfoNCE form and barlow_twins_loss).
void check_matrix(const char* op, const char* what, const Tensor& t, bool allow_half = false, bool allow_cuda = false) {
  SIAM_CHECK(t.defined(), op, ": ", what, " is undefined");
  if (!allow_cuda) ops::require_cpu(op, {t});
  if (allow_half)
    SIAM_CHECK(is_floating(t.dtype()), op, ": ", what, " must be a floating tensor (f32, f64, bf16, f16), got ",
               dtype_name(t.dtype()), " of shape ", shape_str(t.shape()));
  else
    ops::require_floating(op, t);
  SIAM_CHECK(t.dim() == 2, op, ": ", what, " must be (N, D), got ", shape_str(t.shape()));
}

// The dtype the kernels run in: f64 for f64 inputs, f32 otherwise (bf16/f16 inputs accumulate in f32).
DType compute_dtype(const Tensor& t) { return t.dtype() == DType::f64 ? DType::f64 : DType::f32; }

// Rows of `parts` (each (n_k, D)) stacked into one contiguous (sum n_k, D) tensor of dtype dt (no history).
Tensor stack_rows(const std::vector<Tensor>& parts, DType dt) {
  int64_t rows = 0;
  for (const Tensor& p : parts) rows += p.size(0);
  Tensor x = empty({rows, parts[0].size(1)}, TensorOptions(dt, parts[0].device()));
  int64_t r = 0;
  for (const Tensor& p : parts) {
    x.narrow(0, r, p.size(0)).copy_(p.detach());
    r += p.size(0);
  }
  return x;
}

// dz (rows, D) <- the normalization's backward, in place (nothing when not normalized).
void normalize_backward_inplace(bool normalize, const Tensor& z, const Tensor& rnorm, Tensor& dz) {
  if (!normalize) return;
  SIAM_DISPATCH_FLOAT(z.dtype(), "infonce",
                      kernels::cpu::infonce_normalize_backward<scalar_t>(z.size(0), z.size(1), z.data<scalar_t>(),
                                                                         rnorm.data<scalar_t>(), dz.data<scalar_t>(),
                                                                         dz.data<scalar_t>()));
}

// Rows [start, start + n) of d as a gradient of dtype dt (the input's).
Tensor grad_rows(const Tensor& d, int64_t start, int64_t n, DType dt) {
  Tensor g = d.narrow(0, start, n);
  return g.dtype() == dt ? g : g.to(dt);
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

// ---- CUDA (kernels/cuda/infonce.h): the same steps on the device; normalization through kernels/cuda/loss.h ----

constexpr double kNormEps = 1e-12;  // infonce_normalize_rows' eps

// CUDA rows of x (contiguous, f32/f64), normalized when asked; norm (rows) = |x| for the backward.
Tensor prepare_rows_cuda(const Tensor& x, bool normalize, Tensor* norm) {
  Tensor xc = x.detach().contiguous();
  if (!normalize) return xc;
  Tensor z = empty(xc.shape(), xc.options()), nr = empty({xc.size(0)}, xc.options());  // (rows, D), (rows)
  SIAM_CUDA_ONLY(cuda::DeviceGuard g(xc.device().index);
                 kernels::cuda::l2_normalize_forward(xc.dtype(), xc.size(0), xc.size(1), xc.raw_data(), kNormEps,
                                                     z.raw_data(), nr.raw_data()));
  if (norm) *norm = nr;
  return z;
}

// dx (rows, D) from dz through the normalization's backward (dz itself when not normalized).
Tensor normalize_backward_cuda(bool normalize, const Tensor& z, const Tensor& norm, const Tensor& dz) {
  if (!normalize) return dz;
  Tensor dx = empty(dz.shape(), dz.options());
  SIAM_CUDA_ONLY(cuda::DeviceGuard g(dz.device().index);
                 kernels::cuda::l2_normalize_backward(dz.dtype(), dz.size(0), dz.size(1), dz.raw_data(), z.raw_data(),
                                                      norm.raw_data(), kNormEps, dx.raw_data()));
  return dx;
}

// The bf16 tensor-core operands of kernels/cuda/infonce.h (kernel2): the rows x and the columns y (undefined when
// y is; the same copy when y is x) rounded to bf16 and zero-padded to infonce_tc_dim(D) features. Built once, in
// forward (the autocast scope may have ended by backward), and kept for backward.
struct TcOperands {
  Tensor rows, cols;
  bool on() const { return rows.defined(); }
  TcOperands swapped() const { return {cols, rows}; }  // y against x
  kernels::cuda::InfonceBf16 ptrs() const {              // all null when off
    kernels::cuda::InfonceBf16 p;
    if (!on()) return p;
    p.rows = rows.raw_data();
    p.cols = cols.defined() ? cols.raw_data() : nullptr;
    p.dp = rows.size(1);
    return p;
  }
};

Tensor bf16_padded(const Tensor& x, int64_t dp) {
  Tensor out = zeros({x.size(0), dp}, TensorOptions(DType::bf16, x.device()));
  NoGradGuard ng;
  out.narrow(1, 0, x.size(1)).copy_(x);
  return out;
}

// The operands when the call qualifies, else off: f32 rows on a device of compute capability 8.0+, at most
// kInfonceTcMaxDim features, and bf16 inputs or an autocast scope (the logits are a product, and autocast runs
// products in bf16: engine/core/autocast.h). y may be undefined or empty (no columns).
TcOperands tc_operands(const Tensor& x, const Tensor& y, DType input_dtype) {
  TcOperands t;
  if constexpr (ops::kCudaBuild) {
    const bool asked = input_dtype == DType::bf16 || (autocast_enabled() && autocast_dtype() == DType::bf16);
    const int64_t dp = kernels::cuda::infonce_tc_dim(x.size(1));
    if (!asked || !x.is_cuda() || x.dtype() != DType::f32 || !cuda::infonce_tensor_cores() || dp == 0 ||
        !kernels::cuda::infonce_tc_supported(x.device().index))
      return t;
    t.rows = bf16_padded(x, dp);
    const bool same = y.defined() && y.raw_data() == x.raw_data() && y.shape() == x.shape() &&
                      y.strides() == x.strides();
    if (same)
      t.cols = t.rows;
    else if (y.defined() && y.numel() > 0)
      t.cols = bf16_padded(y, dp);
  }
  return t;
}

// Forward on CUDA for both forms; records the backward on `inputs` (self: z1, z2; cross: q). z (rows, D) are
// the prepared rows, keys/queue the prepared cross-form columns (undefined for self).
Tensor infonce_cuda(const char* op, const kernels::cpu::InfonceArgs& args, const std::vector<Tensor>& inputs,
                    const Tensor& z, const Tensor& norm, const Tensor& keys, const Tensor& queue, bool normalize,
                    DType grad_dtype) {
  Tensor lse = empty({args.rows}, z.options()), pos = empty({args.rows}, z.options());  // (rows) each
  Tensor out = empty({}, z.options());
  const void* kp = keys.defined() ? keys.raw_data() : nullptr;
  const void* qp = queue.defined() && queue.numel() > 0 ? queue.raw_data() : nullptr;
  const TcOperands tc = tc_operands(z, queue, grad_dtype);
  const kernels::cuda::InfonceBf16 tp = tc.ptrs();
  SIAM_CUDA_ONLY(cuda::DeviceGuard g(z.device().index);
                 kernels::cuda::infonce_forward(z.dtype(), args, z.raw_data(), kp, qp, pos.raw_data(), lse.raw_data(),
                                                out.raw_data(), tc.rows.defined() ? &tp : nullptr));
  if (autograd::needs_grad(inputs)) {
    autograd::record(op, out, inputs,
                     [args, z, norm, keys, queue, lse, normalize, grad_dtype, tc](const Tensor& g,
                                                                                   const std::vector<bool>& need) {
                       Tensor gc = g.to(z.dtype()).contiguous();  // device scalar: no host sync
                       Tensor dz = empty(z.shape(), z.options());  // (rows, D)
                       const void* kp2 = keys.defined() ? keys.raw_data() : nullptr;
                       const void* qp2 = queue.defined() && queue.numel() > 0 ? queue.raw_data() : nullptr;
                       const kernels::cuda::InfonceBf16 tp2 = tc.ptrs();
                       SIAM_CUDA_ONLY(cuda::DeviceGuard dg(z.device().index);
                                      kernels::cuda::infonce_backward(z.dtype(), args, gc.raw_data(), z.raw_data(),
                                                                      kp2, qp2, lse.raw_data(), dz.raw_data(),
                                                                      tc.rows.defined() ? &tp2 : nullptr));
                       Tensor dx = normalize_backward_cuda(normalize, z, norm, dz);
                       if (!args.self) return std::vector<Tensor>{need[0] ? grad_rows(dx, 0, args.rows, grad_dtype)
                                                                           : Tensor()};
                       const int64_t n = args.pos_offset;
                       return std::vector<Tensor>{need[0] ? grad_rows(dx, 0, n, grad_dtype) : Tensor(),
                                                  need[1] ? grad_rows(dx, n, n, grad_dtype) : Tensor()};
                     });
  }
  return out;
}

}  // namespace

Tensor nt_xent(const Tensor& z1, const Tensor& z2, double temperature, bool normalize) {
  const char* op = "nt_xent";
  check_matrix(op, "z1", z1, /*allow_half=*/true, /*allow_cuda=*/true);
  check_matrix(op, "z2", z2, /*allow_half=*/true, /*allow_cuda=*/true);
  ops::require_same_dtype(op, z1, z2);
  ops::require_same_device(op, z1, z2);
  SIAM_CHECK(z1.shape() == z2.shape(), op, ": the two views must have the same shape, got z1 ", shape_str(z1.shape()),
             " and z2 ", shape_str(z2.shape()));
  SIAM_CHECK(z1.size(0) >= 1 && z1.size(1) >= 1, op, ": needs at least one sample and one feature, got ",
             shape_str(z1.shape()));
  check_temperature(op, temperature);
  const int64_t n = z1.size(0), d = z1.size(1);
  Tensor x = stack_rows({z1, z2}, compute_dtype(z1));  // (2N, D) rows [z1; z2], f32 for bf16/f16 inputs
  if (x.is_cuda()) {
    kernels::cpu::InfonceArgs args;
    args.rows = args.cols = 2 * n;
    args.dim = d;
    args.pos_offset = n;
    args.self = true;
    args.temperature = temperature;
    Tensor norm;
    Tensor z = prepare_rows_cuda(x, normalize, &norm);  // (2N, D)
    return infonce_cuda(op, args, {z1, z2}, z, norm, Tensor(), Tensor(), normalize, z1.dtype());
  }
  Tensor rnorm;
  Tensor z = prepare_rows(x, normalize, &rnorm);  // (2N, D)
  kernels::cpu::InfonceArgs args;
  args.rows = 2 * n;
  args.cols = 2 * n;
  args.dim = d;
  args.pos_offset = n;
  args.self = true;
  args.temperature = temperature;
  Tensor lse = empty({2 * n}, z.options());  // (2N)
  double loss = 0;
  SIAM_DISPATCH_FLOAT(z.dtype(), op,
                      loss = kernels::cpu::infonce_forward<scalar_t>(args, z.data<scalar_t>(), nullptr, nullptr,
                                                                     lse.data<scalar_t>()));
  Tensor out = full({}, loss, z.options());
  if (autograd::needs_grad({z1, z2})) {
    autograd::record(op, out, {z1, z2},
                     [args, z, lse, rnorm, normalize, n, dt = z1.dtype()](
                         const Tensor& g, const std::vector<bool>& need) {
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
                       return std::vector<Tensor>{need[0] ? grad_rows(dz, 0, n, dt) : Tensor(),
                                                  need[1] ? grad_rows(dz, n, n, dt) : Tensor()};
                     });
  }
  return out;
}

Tensor moco_infonce(const Tensor& q, const Tensor& k, const Tensor& queue, double temperature, bool normalize) {
  const char* op = "moco_infonce";
  check_matrix(op, "q", q, /*allow_half=*/true, /*allow_cuda=*/true);
  check_matrix(op, "k", k, /*allow_half=*/true, /*allow_cuda=*/true);
  check_matrix(op, "queue", queue, /*allow_half=*/true, /*allow_cuda=*/true);
  ops::require_same_dtype(op, q, k);
  ops::require_same_dtype(op, q, queue);
  ops::require_same_device(op, q, k);
  ops::require_same_device(op, q, queue);
  SIAM_CHECK(q.shape() == k.shape(), op, ": queries and keys must have the same shape, got q ", shape_str(q.shape()),
             " and k ", shape_str(k.shape()));
  SIAM_CHECK(queue.size(1) == q.size(1), op, ": queue ", shape_str(queue.shape()),
             " must have the feature dim of q ", shape_str(q.shape()));
  SIAM_CHECK(q.size(0) >= 1 && q.size(1) >= 1, op, ": needs at least one query and one feature, got q ",
             shape_str(q.shape()));
  check_temperature(op, temperature);
  // bf16/f16 inputs: f32 copies (on CUDA, bf16 inputs also take the tensor-core kernel, as nt_xent's do)
  const DType qdt = q.dtype(), cdt = compute_dtype(q);
  auto rows_in = [cdt](const Tensor& t) { return t.dtype() == cdt ? t : stack_rows({t}, cdt); };
  if (q.is_cuda()) {
    kernels::cpu::InfonceArgs args;
    args.rows = q.size(0);
    args.cols = queue.size(0);
    args.dim = q.size(1);
    args.self = false;
    args.temperature = temperature;
    Tensor norm;
    Tensor zq = prepare_rows_cuda(rows_in(q), normalize, &norm);                                       // (N, D)
    Tensor zk = prepare_rows_cuda(rows_in(k), normalize, nullptr);                                     // (N, D)
    Tensor zc = queue.size(0) > 0 ? prepare_rows_cuda(rows_in(queue), normalize, nullptr) : Tensor();  // (K, D)
    return infonce_cuda(op, args, {q}, zq, norm, zk, zc, normalize, qdt);
  }
  Tensor rnorm;
  Tensor zq = prepare_rows(rows_in(q), normalize, &rnorm);   // (N, D)
  Tensor zk = prepare_rows(rows_in(k), normalize, nullptr);  // (N, D), no gradient
  Tensor zc = queue.size(0) > 0 ? prepare_rows(rows_in(queue), normalize, nullptr)
                                : queue.detach().to(cdt).contiguous();  // (K, D)
  kernels::cpu::InfonceArgs args;
  args.rows = q.size(0);
  args.cols = queue.size(0);
  args.dim = q.size(1);
  args.self = false;
  args.temperature = temperature;
  Tensor lse = empty({args.rows}, zq.options());  // (N)
  double loss = 0;
  SIAM_DISPATCH_FLOAT(zq.dtype(), op,
                      loss = kernels::cpu::infonce_forward<scalar_t>(args, zq.data<scalar_t>(), zk.data<scalar_t>(),
                                                                     zc.data<scalar_t>(), lse.data<scalar_t>()));
  Tensor out = full({}, loss, zq.options());
  if (autograd::needs_grad({q})) {
    autograd::record(
        op, out, {q}, [args, zq, zk, zc, lse, rnorm, normalize, qdt](const Tensor& g, const std::vector<bool>&) {
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
          return std::vector<Tensor>{grad_rows(dq, 0, args.rows, qdt)};
        });
  }
  return out;
}

namespace {

// Barlow Twins on CUDA (kernels/cuda/xcorr.h): the column kernels and the loss reduction on the device, the two
// products through matmul (cuBLASLt); same saved state and backward as the CPU path.
Tensor barlow_twins_loss_cuda(const Tensor& z1, const Tensor& z2, double lambda, double eps) {
  const int64_t n = z1.size(0), d = z1.size(1);
  const DType dt = z1.dtype();
  Tensor x1 = z1.detach().contiguous(), x2 = z2.detach().contiguous();
  Tensor zh1 = empty({n, d}, x1.options()), zh2 = empty({n, d}, x1.options());  // (N, D)
  Tensor r1 = empty({d}, x1.options()), r2 = empty({d}, x1.options());          // (D)
  Tensor rows = empty({d}, TensorOptions(DType::f64, x1.device()));            // (D) per-row losses
  Tensor out = empty({}, x1.options());
  Tensor c;  // (D, D)
  {
    NoGradGuard ng;
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x1.device().index);
                   kernels::cuda::xcorr_standardize(dt, n, d, x1.raw_data(), eps, zh1.raw_data(), r1.raw_data());
                   kernels::cuda::xcorr_standardize(dt, n, d, x2.raw_data(), eps, zh2.raw_data(), r2.raw_data()));
    c = mul(matmul(zh1.t(), zh2), 1.0 / static_cast<double>(n)).contiguous();
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x1.device().index);
                   kernels::cuda::xcorr_loss(dt, d, lambda, c.raw_data(), static_cast<double*>(rows.raw_data()),
                                             out.raw_data()));
  }
  if (autograd::needs_grad({z1, z2})) {
    autograd::record("barlow_twins_loss", out, {z1, z2},
                     [n, d, dt, lambda, zh1, zh2, r1, r2, c](const Tensor& g, const std::vector<bool>& need) {
                       NoGradGuard ng;
                       Tensor gc = g.to(dt).contiguous();  // device scalar: no host sync
                       Tensor dc = empty({d, d}, c.options());
                       SIAM_CUDA_ONLY(cuda::DeviceGuard dg(c.device().index);
                                      kernels::cuda::xcorr_dc(dt, d, lambda, gc.raw_data(), c.raw_data(),
                                                              dc.raw_data()));
                       const double inv_n = 1.0 / static_cast<double>(n);
                       Tensor d1 = mul(matmul(zh2, dc.t()), inv_n).contiguous();  // dzh1 = zh2 dC^T / N
                       Tensor d2 = mul(matmul(zh1, dc), inv_n).contiguous();      // dzh2 = zh1 dC / N
                       SIAM_CUDA_ONLY(cuda::DeviceGuard dg(c.device().index);
                                      kernels::cuda::xcorr_standardize_backward(dt, n, d, zh1.raw_data(),
                                                                                r1.raw_data(), d1.raw_data());
                                      kernels::cuda::xcorr_standardize_backward(dt, n, d, zh2.raw_data(),
                                                                                r2.raw_data(), d2.raw_data()));
                       return std::vector<Tensor>{need[0] ? d1 : Tensor(), need[1] ? d2 : Tensor()};
                     });
  }
  return out;
}

}  // namespace

namespace {

// min_rows: of the local rows (the distributed form checks the global batch itself).
void check_barlow(const char* op, const Tensor& z1, const Tensor& z2, double lambda, double eps, int64_t min_rows) {
  check_matrix(op, "z1", z1, /*allow_half=*/true, /*allow_cuda=*/true);
  check_matrix(op, "z2", z2, /*allow_half=*/true, /*allow_cuda=*/true);
  ops::require_same_dtype(op, z1, z2);
  SIAM_CHECK(z1.device() == z2.device(), op, ": z1 and z2 must be on one device, got ", z1.device().str(), " and ",
             z2.device().str());
  SIAM_CHECK(z1.shape() == z2.shape(), op, ": the two views must have the same shape, got z1 ", shape_str(z1.shape()),
             " and z2 ", shape_str(z2.shape()));
  SIAM_CHECK(z1.size(0) >= min_rows && z1.size(1) >= 1, op, ": batch standardization needs at least ", min_rows,
             min_rows == 1 ? " sample" : " samples", " and 1 feature, got ", shape_str(z1.shape()));
  SIAM_CHECK(std::isfinite(lambda) && lambda >= 0, op, ": lambda must be finite and >= 0, got ", lambda);
  SIAM_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
}

}  // namespace

Tensor barlow_twins_loss(const Tensor& z1, const Tensor& z2, double lambda, double eps, const BatchStatHooks& hooks) {
  const char* op = "barlow_twins_loss";
  check_barlow(op, z1, z2, lambda, eps, 1);
  check_batch_stat_hooks(op, z1, hooks);
  if (ops::is_half(z1.dtype())) return barlow_twins_loss(z1.to(DType::f32), z2.to(DType::f32), lambda, eps, hooks);
  const auto& total = hooks.all_reduce_sum;
  const double n = static_cast<double>(hooks.global_batch);
  const int64_t d = z1.size(1);
  Tensor m = div(total(cat({sum(z1, {0}), sum(z2, {0})}, 0)), n);  // (2D) the means of both views
  Tensor c1 = sub(z1, m.narrow(0, 0, d)), c2 = sub(z2, m.narrow(0, d, d));
  Tensor var = div(total(cat({sum(square(c1), {0}), sum(square(c2), {0})}, 0)), n);  // (2D) biased
  Tensor zh1 = div(c1, sqrt(add(var.narrow(0, 0, d), eps))), zh2 = div(c2, sqrt(add(var.narrow(0, d, d), eps)));
  Tensor c = div(total(matmul(zh1.t(), zh2)), n);  // (D, D)
  Tensor id = eye(d, TensorOptions(c.dtype(), c.device()));
  Tensor on = sum(square(rsub(1.0, sum(mul(c, id), {1}))));
  Tensor off = sum(square(mul(c, rsub(1.0, id))));
  return add(on, mul(off, lambda));
}

Tensor barlow_twins_loss(const Tensor& z1, const Tensor& z2, double lambda, double eps) {
  const char* op = "barlow_twins_loss";
  check_barlow(op, z1, z2, lambda, eps, 2);
  if (ops::is_half(z1.dtype()))  // f32 copies; the casts round the gradients back
    return barlow_twins_loss(z1.to(DType::f32), z2.to(DType::f32), lambda, eps);
  const int64_t n = z1.size(0), d = z1.size(1);
  if (z1.device().is_cuda()) return barlow_twins_loss_cuda(z1, z2, lambda, eps);
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
    autograd::record(op, out, {z1, z2},
                     [n, d, lambda, zh1, zh2, r1, r2, c](const Tensor& g, const std::vector<bool>& need) {
                       Tensor d1 = empty({n, d}, zh1.options()), d2 = empty({n, d}, zh1.options());  // (N, D)
                       SIAM_DISPATCH_FLOAT(zh1.dtype(), "barlow_twins_loss",
                                           kernels::cpu::xcorr_backward<scalar_t>(
                                               n, d, static_cast<scalar_t>(g.item()), lambda, zh1.data<scalar_t>(),
                                               zh2.data<scalar_t>(), r1.data<scalar_t>(), r2.data<scalar_t>(),
                                               c.data<scalar_t>(), d1.data<scalar_t>(), d2.data<scalar_t>()));
                       return std::vector<Tensor>{need[0] ? d1 : Tensor(), need[1] ? d2 : Tensor()};
                     });
  }
  return out;
}

// ---- the other InfoNCE forms (kernels/cpu/infonce.h: supcon_*, clip_*, infonce_gathered_*) ----

namespace {

// The gradients of the stacked parts (rows sizes[0], sizes[1], ... of d, in dtype dt; undefined where not needed).
std::vector<Tensor> part_grads(const Tensor& d, const std::vector<int64_t>& sizes, const std::vector<bool>& need,
                               DType dt) {
  std::vector<Tensor> grads;
  int64_t r = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    grads.push_back(need[k] ? grad_rows(d, r, sizes[k], dt) : Tensor());
    r += sizes[k];
  }
  return grads;
}

// ---- the same forms on CUDA: kernels/cuda/infonce.h's rows_lse and grad_pass (the O(M^2 D) work, never an
// M x M matrix), the O(M D) positive terms and the loss's sums with engine ops on the device. The upstream
// gradient stays on the device (no host sync in backward); index metadata is built on the host in forward. ----

Tensor i64_on(const std::vector<int64_t>& v, Device dev) {
  return from_vector_i64(v, {static_cast<int64_t>(v.size())}).to(dev);
}
Tensor values_on(const std::vector<double>& v, const TensorOptions& opts) {
  return from_vector(v, {static_cast<int64_t>(v.size())}, TensorOptions(opts.dtype)).to(opts.device);
}

// lse (rows) of x against y with each row's masked column (mask undefined: none); tc: the bf16 operands of
// (x, y), or off.
Tensor rows_lse_cuda(const Tensor& x, const Tensor& y, const Tensor& mask, double t, const TcOperands& tc) {
  Tensor lse = empty({x.size(0)}, x.options());
  const kernels::cuda::InfonceBf16 tp = tc.ptrs();
  SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                 kernels::cuda::infonce_rows_lse(
                     x.dtype(), x.size(0), y.size(0), x.size(1), t, x.raw_data(), y.raw_data(),
                     mask.defined() ? static_cast<const int64_t*>(mask.raw_data()) : nullptr, lse.raw_data(),
                     tc.on() ? &tp : nullptr));
  return lse;
}

// grad[0] * scale / t * sum_{j unmasked} (exp(S_ij - a_i) + exp(S_ij - b_j)) y_j; a, b undefined: term absent.
Tensor grad_pass_cuda(const Tensor& x, const Tensor& y, const Tensor& mask, const Tensor& a, const Tensor& b,
                      const Tensor& grad, double scale, double t, const TcOperands& tc) {
  Tensor dx = empty(x.shape(), x.options());
  const kernels::cuda::InfonceBf16 tp = tc.ptrs();
  SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                 kernels::cuda::infonce_grad_pass(
                     x.dtype(), x.size(0), y.size(0), x.size(1), t, x.raw_data(), y.raw_data(),
                     mask.defined() ? static_cast<const int64_t*>(mask.raw_data()) : nullptr,
                     a.defined() ? a.raw_data() : nullptr, b.defined() ? b.raw_data() : nullptr, grad.raw_data(),
                     scale, dx.raw_data(), tc.on() ? &tp : nullptr));
  return dx;
}

// SupCon / V-view NT-Xent on CUDA (the CPU's supcon_forward / supcon_backward): class sums Z_c by scatter_add.
Tensor multi_positive_cuda(const char* op, const std::vector<Tensor>& parts, const Tensor& labels,
                           double temperature, bool normalize) {
  const DType dt = parts[0].dtype();
  const Device dev = parts[0].device();
  Tensor norm;
  Tensor z = prepare_rows_cuda(stack_rows(parts, compute_dtype(parts[0])), normalize, &norm);  // (M, D)
  const int64_t M = z.size(0), D = z.size(1);
  Tensor lab = labels.contiguous();
  const int64_t* lp = lab.data<int64_t>();
  std::map<int64_t, int64_t> dense;  // label -> class id 0..C-1
  std::vector<int64_t> id(static_cast<size_t>(M)), count, self(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i) {
    auto [it, fresh] = dense.emplace(lp[i], static_cast<int64_t>(count.size()));
    if (fresh) count.push_back(0);
    id[static_cast<size_t>(i)] = it->second;
    ++count[static_cast<size_t>(it->second)];
    self[static_cast<size_t>(i)] = i;
  }
  int64_t R = 0;  // rows with at least one positive
  for (int64_t i = 0; i < M; ++i) R += count[static_cast<size_t>(id[static_cast<size_t>(i)])] > 1;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> valid(static_cast<size_t>(M)), w(static_cast<size_t>(M)), lw_add(static_cast<size_t>(M)),
      coef(static_cast<size_t>(M));
  for (size_t i = 0; i < static_cast<size_t>(M); ++i) {
    const double np = static_cast<double>(count[static_cast<size_t>(id[i])] - 1);
    valid[i] = np > 0 ? 1.0 : 0.0;
    w[i] = np > 0 ? 1.0 / (temperature * np) : 0.0;                                      // positive mean / t
    lw_add[i] = np > 0 ? 0.0 : inf;                                                       // drops the row's terms
    coef[i] = np > 0 ? 2.0 / (static_cast<double>(R) * temperature * np) : 0.0;           // positive gradient
  }
  Tensor mask = i64_on(self, dev), cls = i64_on(id, dev);
  const TcOperands tc = tc_operands(z, z, dt);
  Tensor lse = rows_lse_cuda(z, z, mask, temperature, tc);  // (M)
  Tensor out, zc_rows;                                  // [], (M, D) the class sum of each row's class
  {
    NoGradGuard ng;
    Tensor idx = cls.view({M, 1}).expand({M, D}).contiguous();
    Tensor zsum = scatter_add(zeros({static_cast<int64_t>(count.size()), D}, z.options()), 0, idx, z);  // (C, D)
    zc_rows = index_select(zsum, 0, cls);
    Tensor p = sum(mul(z, sub(zc_rows, z)), {1});  // (M) z_i . (Z_c - z_i)
    out = R > 0 ? mul(sum(sub(mul(lse, values_on(valid, z.options())), mul(p, values_on(w, z.options())))),
                      1.0 / static_cast<double>(R))
                : zeros({}, z.options());
  }
  if (autograd::needs_grad(parts)) {
    std::vector<int64_t> sizes;
    for (const Tensor& p : parts) sizes.push_back(p.size(0));
    Tensor lw_add_d = values_on(lw_add, z.options()), coef_d = values_on(coef, z.options()).view({M, 1});
    autograd::record(op, out, parts,
                     [z, norm, mask, lse, zc_rows, lw_add_d, coef_d, R, temperature, normalize, sizes, dt, tc](
                         const Tensor& g, const std::vector<bool>& need) {
                       NoGradGuard ng;
                       Tensor gc = g.to(z.dtype()).contiguous();  // device scalar: no host sync
                       Tensor dz;
                       if (R == 0) {
                         dz = zeros(z.shape(), z.options());
                       } else {
                         Tensor lw = add(lse, lw_add_d);  // +inf on rows without a positive
                         dz = grad_pass_cuda(z, z, mask, lw, lw, gc, 1.0 / static_cast<double>(R), temperature, tc);
                         dz = sub(dz, mul(mul(coef_d, gc), sub(zc_rows, z)));
                       }
                       return part_grads(normalize_backward_cuda(normalize, z, norm, dz), sizes, need, dt);
                     });
  }
  return out;
}

// CLIP on CUDA (the CPU's clip_forward / clip_backward).
Tensor clip_loss_cuda(const Tensor& a, const Tensor& b, double temperature, bool normalize) {
  const DType dt = a.dtype(), cdt = compute_dtype(a);
  Tensor na, nb;
  Tensor za = prepare_rows_cuda(stack_rows({a}, cdt), normalize, &na);  // (N, D)
  Tensor zb = prepare_rows_cuda(stack_rows({b}, cdt), normalize, &nb);  // (N, D)
  const int64_t n = za.size(0);
  const TcOperands tc = tc_operands(za, zb, dt);
  Tensor la = rows_lse_cuda(za, zb, Tensor(), temperature, tc);
  Tensor lb = rows_lse_cuda(zb, za, Tensor(), temperature, tc.swapped());
  Tensor out;
  {
    NoGradGuard ng;
    Tensor sii = sum(mul(za, zb));  // sum_i a_i . b_i
    out = mul(sub(add(sum(la), sum(lb)), mul(sii, 2.0 / temperature)), 1.0 / (2.0 * static_cast<double>(n)));
  }
  if (autograd::needs_grad({a, b})) {
    autograd::record("clip_loss", out, {a, b},
                     [za, zb, na, nb, la, lb, n, temperature, normalize, dt, tc](const Tensor& g,
                                                                                 const std::vector<bool>& need) {
                       NoGradGuard ng;
                       Tensor gc = g.to(za.dtype()).contiguous();
                       const double half_mean = 1.0 / (2.0 * static_cast<double>(n));
                       Tensor pf = mul(gc, 1.0 / (static_cast<double>(n) * temperature));  // positive terms
                       Tensor da, db;
                       if (need[0]) {
                         da = sub(grad_pass_cuda(za, zb, Tensor(), la, lb, gc, half_mean, temperature, tc),
                                  mul(zb, pf));
                         da = grad_rows(normalize_backward_cuda(normalize, za, na, da), 0, n, dt);
                       }
                       if (need[1]) {
                         db = sub(grad_pass_cuda(zb, za, Tensor(), lb, la, gc, half_mean, temperature, tc.swapped()),
                                  mul(za, pf));
                         db = grad_rows(normalize_backward_cuda(normalize, zb, nb, db), 0, n, dt);
                       }
                       return std::vector<Tensor>{da, db};
                     });
  }
  return out;
}

// Gathered NT-Xent on CUDA (the CPU's infonce_gathered_forward / _backward): local rows x = [z1; z2] (2n, D)
// against gathered columns [g1; g2] (2m, D).
Tensor nt_xent_gathered_cuda(const Tensor& z1, const Tensor& z2, const Tensor& g1, const Tensor& g2, int64_t offset,
                             double temperature, bool normalize) {
  const DType dt = z1.dtype(), cdt = compute_dtype(z1);
  const Device dev = z1.device();
  const int64_t n = z1.size(0), m = g1.size(0), d = z1.size(1), R = 2 * n, C = 2 * m;
  Tensor nx, ng;
  Tensor x = prepare_rows_cuda(stack_rows({z1, z2}, cdt), normalize, &nx);   // (2n, D)
  Tensor gz = prepare_rows_cuda(stack_rows({g1, g2}, cdt), normalize, &ng);  // (2m, D)
  // own column (masked) and positive column of each local row; their transposes (-1 / the zero row R: none)
  std::vector<int64_t> own(static_cast<size_t>(R)), pos(static_cast<size_t>(R)), own_t(static_cast<size_t>(C), -1),
      pos_t(static_cast<size_t>(C), R);
  for (int64_t r = 0; r < R; ++r) {
    own[static_cast<size_t>(r)] = r < n ? offset + r : m + offset + r - n;
    pos[static_cast<size_t>(r)] = r < n ? m + offset + r : offset + r - n;
    own_t[static_cast<size_t>(own[static_cast<size_t>(r)])] = r;
    pos_t[static_cast<size_t>(pos[static_cast<size_t>(r)])] = r;
  }
  Tensor own_d = i64_on(own, dev), pos_d = i64_on(pos, dev), own_t_d = i64_on(own_t, dev), pos_t_d = i64_on(pos_t, dev);
  const TcOperands tc = tc_operands(x, gz, dt);
  Tensor lse = rows_lse_cuda(x, gz, own_d, temperature, tc);  // (2n)
  Tensor out, gp;                                         // [], (2n, D) each row's positive column
  {
    NoGradGuard ng2;
    gp = index_select(gz, 0, pos_d);
    out = mul(sub(sum(lse), mul(sum(mul(x, gp)), 1.0 / temperature)), 1.0 / static_cast<double>(R));
  }
  if (autograd::needs_grad({z1, z2, g1, g2})) {
    autograd::record(
        "nt_xent_gathered", out, {z1, z2, g1, g2},
        [x, gz, nx, ng, lse, gp, own_d, own_t_d, pos_t_d, n, m, d, R, temperature, normalize, dt, tc](
            const Tensor& g, const std::vector<bool>& need) {
          NoGradGuard ng2;
          Tensor gc = g.to(x.dtype()).contiguous();
          const double scale = 1.0 / static_cast<double>(R);
          Tensor pf = mul(gc, 1.0 / (static_cast<double>(R) * temperature));
          std::vector<Tensor> grads(4);
          if (need[0] || need[1]) {
            Tensor dx = sub(grad_pass_cuda(x, gz, own_d, lse, Tensor(), gc, scale, temperature, tc), mul(gp, pf));
            dx = normalize_backward_cuda(normalize, x, nx, dx);
            if (need[0]) grads[0] = grad_rows(dx, 0, n, dt);
            if (need[1]) grads[1] = grad_rows(dx, n, n, dt);
          }
          if (need[2] || need[3]) {
            Tensor dg = grad_pass_cuda(gz, x, own_t_d, Tensor(), lse, gc, scale, temperature, tc.swapped());
            // dg_pos(r) -= pf x_r: the local rows gathered into column order, a zero row for the others
            Tensor x0 = cat({x, zeros({1, d}, x.options())}, 0);
            dg = sub(dg, mul(index_select(x0, 0, pos_t_d), pf));
            dg = normalize_backward_cuda(normalize, gz, ng, dg);
            if (need[2]) grads[2] = grad_rows(dg, 0, m, dt);
            if (need[3]) grads[3] = grad_rows(dg, m, m, dt);
          }
          return grads;
        });
  }
  return out;
}

// SupCon over the rows of `parts` stacked (each (n_k, D)), labels (M) i64; gradients split back per part.
Tensor multi_positive(const char* op, const std::vector<Tensor>& parts, const Tensor& labels, double temperature,
                      bool normalize) {
  if (parts[0].is_cuda()) return multi_positive_cuda(op, parts, labels, temperature, normalize);
  const DType dt = parts[0].dtype();
  Tensor x = stack_rows(parts, compute_dtype(parts[0]));  // (M, D)
  Tensor rnorm;
  Tensor z = prepare_rows(x, normalize, &rnorm);  // (M, D)
  const int64_t M = z.size(0), D = z.size(1);
  Tensor lab = labels.contiguous();  // (M) i64
  Tensor lse = empty({M}, z.options());  // (M)
  double loss = 0;
  SIAM_DISPATCH_FLOAT(z.dtype(), op,
                      loss = kernels::cpu::supcon_forward<scalar_t>(M, D, temperature, z.data<scalar_t>(),
                                                                    lab.data<int64_t>(), lse.data<scalar_t>()));
  Tensor out = full({}, loss, z.options());
  if (autograd::needs_grad(parts)) {
    std::vector<int64_t> sizes;
    for (const Tensor& p : parts) sizes.push_back(p.size(0));
    autograd::record(op, out, parts,
                     [op, z, lab, lse, rnorm, normalize, temperature, sizes, dt](const Tensor& g,
                                                                                const std::vector<bool>& need) {
                       Tensor dz = empty(z.shape(), z.options());  // (M, D)
                       SIAM_DISPATCH_FLOAT(z.dtype(), op,
                                           kernels::cpu::supcon_backward<scalar_t>(
                                               z.size(0), z.size(1), temperature, static_cast<scalar_t>(g.item()),
                                               z.data<scalar_t>(), lab.data<int64_t>(), lse.data<scalar_t>(),
                                               dz.data<scalar_t>()));
                       normalize_backward_inplace(normalize, z, rnorm, dz);
                       return part_grads(dz, sizes, need, dt);
                     });
  }
  return out;
}

}  // namespace

Tensor supcon(const Tensor& z, const Tensor& labels, double temperature, bool normalize) {
  const char* op = "supcon";
  check_matrix(op, "z", z, /*allow_half=*/true, /*allow_cuda=*/true);
  SIAM_CHECK(z.size(0) >= 1 && z.size(1) >= 1, op, ": needs at least one row and one feature, got z ",
             shape_str(z.shape()));
  SIAM_CHECK(labels.defined(), op, ": labels is undefined");
  ops::require_cpu(op, {labels});
  SIAM_CHECK(labels.dtype() == DType::i64 && labels.dim() == 1 && labels.size(0) == z.size(0), op,
             ": labels must be an i64 vector of one label per row (", z.size(0), "), got ", dtype_name(labels.dtype()),
             " ", shape_str(labels.shape()));
  check_temperature(op, temperature);
  return multi_positive(op, {z}, labels, temperature, normalize);
}

Tensor nt_xent_multi(const std::vector<Tensor>& views, double temperature, bool normalize) {
  const char* op = "nt_xent_multi";
  SIAM_CHECK(views.size() >= 2, op, ": needs at least 2 views, got ", views.size());
  for (size_t v = 0; v < views.size(); ++v) {
    check_matrix(op, "a view", views[v], /*allow_half=*/true, /*allow_cuda=*/true);
    ops::require_same_device(op, views[0], views[v]);
    SIAM_CHECK(views[v].shape() == views[0].shape(), op, ": all views must have the same shape, got view 0 ",
               shape_str(views[0].shape()), " and view ", v, " ", shape_str(views[v].shape()));
    ops::require_same_dtype(op, views[0], views[v]);
  }
  SIAM_CHECK(views[0].size(0) >= 1 && views[0].size(1) >= 1, op, ": needs at least one sample and one feature, got ",
             shape_str(views[0].shape()));
  check_temperature(op, temperature);
  const int64_t n = views[0].size(0), V = static_cast<int64_t>(views.size());
  std::vector<int64_t> lab(V * n);  // row v * N + s has label s
  for (int64_t i = 0; i < V * n; ++i) lab[i] = i % n;
  return multi_positive(op, views, from_vector_i64(lab, {V * n}), temperature, normalize);
}

Tensor clip_loss(const Tensor& a, const Tensor& b, double temperature, bool normalize) {
  const char* op = "clip_loss";
  check_matrix(op, "a", a, /*allow_half=*/true, /*allow_cuda=*/true);
  check_matrix(op, "b", b, /*allow_half=*/true, /*allow_cuda=*/true);
  ops::require_same_dtype(op, a, b);
  ops::require_same_device(op, a, b);
  SIAM_CHECK(a.shape() == b.shape(), op, ": the two modalities must have the same shape, got a ",
             shape_str(a.shape()), " and b ", shape_str(b.shape()));
  SIAM_CHECK(a.size(0) >= 1 && a.size(1) >= 1, op, ": needs at least one pair and one feature, got ",
             shape_str(a.shape()));
  check_temperature(op, temperature);
  if (a.is_cuda()) return clip_loss_cuda(a, b, temperature, normalize);
  const DType dt = a.dtype(), cdt = compute_dtype(a);
  const int64_t n = a.size(0), d = a.size(1);
  Tensor ra, rb;
  Tensor za = prepare_rows(stack_rows({a}, cdt), normalize, &ra);  // (N, D)
  Tensor zb = prepare_rows(stack_rows({b}, cdt), normalize, &rb);  // (N, D)
  Tensor la = empty({n}, za.options()), lb = empty({n}, za.options());  // (N) row and column logsumexp
  double loss = 0;
  SIAM_DISPATCH_FLOAT(cdt, op,
                      loss = kernels::cpu::clip_forward<scalar_t>(n, d, temperature, za.data<scalar_t>(),
                                                                  zb.data<scalar_t>(), la.data<scalar_t>(),
                                                                  lb.data<scalar_t>()));
  Tensor out = full({}, loss, za.options());
  if (autograd::needs_grad({a, b})) {
    autograd::record(op, out, {a, b},
                     [za, zb, ra, rb, la, lb, normalize, temperature, n, d, dt](const Tensor& g,
                                                                                const std::vector<bool>& need) {
                       Tensor da = need[0] ? empty({n, d}, za.options()) : Tensor();  // (N, D)
                       Tensor db = need[1] ? empty({n, d}, za.options()) : Tensor();  // (N, D)
                       SIAM_DISPATCH_FLOAT(za.dtype(), "clip_loss",
                                           kernels::cpu::clip_backward<scalar_t>(
                                               n, d, temperature, static_cast<scalar_t>(g.item()), za.data<scalar_t>(),
                                               zb.data<scalar_t>(), la.data<scalar_t>(), lb.data<scalar_t>(),
                                               need[0] ? da.data<scalar_t>() : nullptr,
                                               need[1] ? db.data<scalar_t>() : nullptr));
                       if (need[0]) normalize_backward_inplace(normalize, za, ra, da);
                       if (need[1]) normalize_backward_inplace(normalize, zb, rb, db);
                       return std::vector<Tensor>{need[0] ? grad_rows(da, 0, n, dt) : Tensor(),
                                                  need[1] ? grad_rows(db, 0, n, dt) : Tensor()};
                     });
  }
  return out;
}

Tensor nt_xent_gathered(const Tensor& z1, const Tensor& z2, const Tensor& g1, const Tensor& g2, int64_t offset,
                        double temperature, bool normalize) {
  const char* op = "nt_xent_gathered";
  check_matrix(op, "z1", z1, /*allow_half=*/true, /*allow_cuda=*/true);
  check_matrix(op, "z2", z2, /*allow_half=*/true, /*allow_cuda=*/true);
  check_matrix(op, "g1", g1, /*allow_half=*/true, /*allow_cuda=*/true);
  check_matrix(op, "g2", g2, /*allow_half=*/true, /*allow_cuda=*/true);
  ops::require_same_device(op, z1, z2);
  ops::require_same_device(op, z1, g1);
  ops::require_same_device(op, z1, g2);
  ops::require_same_dtype(op, z1, z2);
  ops::require_same_dtype(op, z1, g1);
  ops::require_same_dtype(op, z1, g2);
  SIAM_CHECK(z1.shape() == z2.shape(), op, ": the two local views must have the same shape, got z1 ",
             shape_str(z1.shape()), " and z2 ", shape_str(z2.shape()));
  SIAM_CHECK(g1.shape() == g2.shape(), op, ": the two gathered views must have the same shape, got g1 ",
             shape_str(g1.shape()), " and g2 ", shape_str(g2.shape()));
  SIAM_CHECK(g1.size(1) == z1.size(1), op, ": gathered g1 ", shape_str(g1.shape()), " must have the feature dim of z1 ",
             shape_str(z1.shape()));
  SIAM_CHECK(z1.size(0) >= 1 && z1.size(1) >= 1, op, ": needs at least one sample and one feature, got z1 ",
             shape_str(z1.shape()));
  SIAM_CHECK(offset >= 0 && offset + z1.size(0) <= g1.size(0), op, ": this rank's rows [", offset, ", ",
             offset + z1.size(0), ") must lie within the gathered rows [0, ", g1.size(0), ")");
  check_temperature(op, temperature);
  if (z1.is_cuda()) return nt_xent_gathered_cuda(z1, z2, g1, g2, offset, temperature, normalize);
  const DType dt = z1.dtype(), cdt = compute_dtype(z1);
  const int64_t n = z1.size(0), m = g1.size(0), d = z1.size(1);
  Tensor rx, rg;
  Tensor x = prepare_rows(stack_rows({z1, z2}, cdt), normalize, &rx);  // (2n, D) local rows
  Tensor gz = prepare_rows(stack_rows({g1, g2}, cdt), normalize, &rg);  // (2m, D) gathered columns
  Tensor lse = empty({2 * n}, x.options());  // (2n)
  double loss = 0;
  SIAM_DISPATCH_FLOAT(cdt, op,
                      loss = kernels::cpu::infonce_gathered_forward<scalar_t>(
                          n, m, offset, d, temperature, x.data<scalar_t>(), gz.data<scalar_t>(), lse.data<scalar_t>()));
  Tensor out = full({}, loss, x.options());
  if (autograd::needs_grad({z1, z2, g1, g2})) {
    autograd::record(
        op, out, {z1, z2, g1, g2},
        [x, gz, rx, rg, lse, normalize, temperature, n, m, d, offset, dt](const Tensor& g,
                                                                           const std::vector<bool>& need) {
          const bool rows = need[0] || need[1], cols = need[2] || need[3];
          Tensor dx = rows ? empty({2 * n, d}, x.options()) : Tensor();   // (2n, D) row pass
          Tensor dg = cols ? empty({2 * m, d}, x.options()) : Tensor();   // (2m, D) column pass
          SIAM_DISPATCH_FLOAT(x.dtype(), "nt_xent_gathered",
                              kernels::cpu::infonce_gathered_backward<scalar_t>(
                                  n, m, offset, d, temperature, static_cast<scalar_t>(g.item()), x.data<scalar_t>(),
                                  gz.data<scalar_t>(), lse.data<scalar_t>(), rows ? dx.data<scalar_t>() : nullptr,
                                  cols ? dg.data<scalar_t>() : nullptr));
          if (rows) normalize_backward_inplace(normalize, x, rx, dx);
          if (cols) normalize_backward_inplace(normalize, gz, rg, dg);
          return std::vector<Tensor>{need[0] ? grad_rows(dx, 0, n, dt) : Tensor(),
                                     need[1] ? grad_rows(dx, n, n, dt) : Tensor(),
                                     need[2] ? grad_rows(dg, 0, m, dt) : Tensor(),
                                     need[3] ? grad_rows(dg, m, m, dt) : Tensor()};
        });
  }
  return out;
}

}  // namespace siam

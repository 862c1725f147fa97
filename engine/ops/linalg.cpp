// matmul and linear. Operands whose last two dims are row-major or column-major (a transposed view) go to
// BLAS as they are, with the matching transpose flag; anything else is made contiguous first.
#include "engine/ops/linalg.h"

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/gemm.h"

namespace siam {

namespace {

// How a (rows, cols) matrix with strides (s0, s1) is handed to BLAS.
struct BlasMat {
  bool trans = false;
  int64_t ld = 0;
  bool ok = false;
};
BlasMat blas_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
  if (s1 == 1 && (rows <= 1 || s0 >= std::max<int64_t>(cols, 1))) return {false, std::max<int64_t>(rows <= 1 ? cols : s0, 1), true};
  if (s0 == 1 && (cols <= 1 || s1 >= std::max<int64_t>(rows, 1))) return {true, std::max<int64_t>(cols <= 1 ? rows : s1, 1), true};
  return {};
}

// Last two dims usable by BLAS as they are? Otherwise a contiguous copy.
Tensor blas_ready(const Tensor& t) {
  int64_t r = t.size(-2), c = t.size(-1);
  if (blas_layout(r, c, t.stride(-2), t.stride(-1)).ok) return t;
  return t.contiguous();
}

// out (batch..., n, m) = a (batch..., n, k) @ b (batch..., k, m); a, b already expanded to the batch shape.
void batched_gemm(const Tensor& a, const Tensor& b, Tensor& out) {
  int64_t nd = out.dim();
  int64_t n = out.size(-2), m = out.size(-1), k = a.size(-1);
  int64_t batch = 1;
  for (int64_t d = 0; d < nd - 2; ++d) batch *= out.shape()[d];
  BlasMat la = blas_layout(n, k, a.stride(-2), a.stride(-1));
  BlasMat lb = blas_layout(k, m, b.stride(-2), b.stride(-1));
  SIAM_ASSERT(la.ok && lb.ok, "matmul operands not BLAS-ready");
  auto batch_offset = [&](const Tensor& t, int64_t bi) {
    int64_t off = 0;
    for (int64_t d = nd - 3; d >= 0; --d) {
      int64_t c = bi % out.shape()[d];
      bi /= out.shape()[d];
      off += c * t.strides()[d];
    }
    return off;
  };
  const bool par = batch >= 2 && n * m * k < (1 << 18);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for if (par)
    for (int64_t bi = 0; bi < batch; ++bi)
      kernels::cpu::gemm<T>(la.trans, lb.trans, n, m, k, T(1), pa + batch_offset(a, bi), la.ld,
                            pb + batch_offset(b, bi), lb.ld, T(0), po + bi * n * m, m);
  };
  SIAM_DISPATCH_FLOAT(out.dtype(), "matmul", run(scalar_t(0)));
}

// Forward of matmul for operands of rank >= 2 (no autograd).
Tensor matmul_raw(const Tensor& a_in, const Tensor& b_in) {
  int64_t k = a_in.size(-1);
  SIAM_CHECK(b_in.size(-2) == k, "matmul: inner dims differ, ", shape_str(a_in.shape()), " @ ",
             shape_str(b_in.shape()));
  // A 2-D right operand and a contiguous left one: fold the batch into the rows (one large GEMM).
  if (b_in.dim() == 2 && a_in.dim() > 2 && a_in.is_contiguous()) {
    Tensor a2 = a_in.detach().reshape({-1, k});
    Tensor o2 = matmul_raw(a2, b_in);
    Shape s = a_in.shape();
    s.back() = b_in.size(-1);
    return o2.reshape(s);
  }
  Shape ba(a_in.shape().begin(), a_in.shape().end() - 2), bb(b_in.shape().begin(), b_in.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Tensor a = blas_ready(a_in.detach()), b = blas_ready(b_in.detach());
  Shape sa = batch, sb = batch, so = batch;
  sa.push_back(a.size(-2));
  sa.push_back(k);
  sb.push_back(k);
  sb.push_back(b.size(-1));
  so.push_back(a.size(-2));
  so.push_back(b.size(-1));
  Tensor ea = a.expand(sa), eb = b.expand(sb);
  Tensor out = empty(so, a.options());
  batched_gemm(ea, eb, out);
  return out;
}

Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  Tensor out = matmul_raw(a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor ad = a.detach(), bd = b.detach();
    autograd::record("matmul", out, {a, b}, [ad, bd](const Tensor& g, const std::vector<bool>& need) {
      Tensor ga, gb;
      if (need[0]) ga = sum_to(matmul_raw(g, bd.transpose(-1, -2)), ad.shape());
      if (need[1]) {
        if (bd.dim() == 2 && ad.dim() > 2) {
          // fold the batch: b's gradient is (sum over batch rows) a^T g
          Tensor a2 = ad.reshape({-1, ad.size(-1)}), g2 = g.reshape({-1, g.size(-1)});
          gb = matmul_raw(a2.t(), g2);
        } else {
          gb = sum_to(matmul_raw(ad.transpose(-1, -2), g), bd.shape());
        }
      }
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  ops::require_cpu("matmul", {a, b});
  ops::require_same_dtype("matmul", a, b);
  ops::require_floating("matmul", a);
  SIAM_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least 1 dim, got ", shape_str(a.shape()),
             " @ ", shape_str(b.shape()));
  SIAM_CHECK(a.size(-1) == (b.dim() == 1 ? b.size(0) : b.size(-2)), "matmul: inner dims differ, ",
             shape_str(a.shape()), " @ ", shape_str(b.shape()));
  if (a.dim() == 1 && b.dim() == 1) return sum(mul(a, b));
  if (a.dim() == 1) return matmul_nd(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul_nd(a, b.unsqueeze(1)).squeeze(-1);
  return matmul_nd(a, b);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  ops::require_cpu("linear", {x, w, b});
  ops::require_floating("linear", x);
  ops::require_same_dtype("linear", x, w);
  SIAM_CHECK(w.dim() == 2, "linear: weight must be (out, in), got ", shape_str(w.shape()));
  SIAM_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: input ", shape_str(x.shape()),
             " does not match weight ", shape_str(w.shape()), " (last input dim must equal in_features ", w.size(1),
             ")");
  int64_t in = w.size(1), outf = w.size(0);
  if (b.defined()) {
    ops::require_same_dtype("linear", x, b);
    SIAM_CHECK(b.dim() == 1 && b.size(0) == outf, "linear: bias ", shape_str(b.shape()), " does not match weight ",
               shape_str(w.shape()));
  }
  Tensor x2 = blas_ready(x.detach().reshape({-1, in}));
  Tensor wd = w.detach();
  int64_t rows = x2.size(0);
  Tensor out = empty({rows, outf}, x.options());
  BlasMat lx = blas_layout(rows, in, x2.stride(0), x2.stride(1));
  Tensor wc = blas_ready(wd);
  BlasMat lw = blas_layout(outf, in, wc.stride(0), wc.stride(1));
  auto run = [&](auto zero) {
    using T = decltype(zero);
    T beta = 0;
    if (b.defined()) {
      Tensor bc = b.detach().contiguous();
      const T* pb = bc.data<T>();
      T* po = out.data<T>();
#pragma omp parallel for if (rows * outf > 65536)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < outf; ++j) po[r * outf + j] = pb[j];
      beta = 1;
    }
    // out = x2 @ w^T: w stored (out, in) is op(B) = w^T, so its transpose flag is flipped
    kernels::cpu::gemm<T>(lx.trans, !lw.trans, rows, outf, in, T(1), x2.data<T>(), lx.ld, wc.data<T>(), lw.ld, beta,
                          out.data<T>(), outf);
  };
  SIAM_DISPATCH_FLOAT(x.dtype(), "linear", run(scalar_t(0)));
  Shape out_shape = x.shape();
  out_shape.back() = outf;
  out = out.reshape(out_shape);
  if (autograd::needs_grad({x, w, b})) {
    Tensor xs = x2, ws = wc;
    Shape xshape = x.shape();
    autograd::record("linear", out, {x, w, b}, [xs, ws, xshape](const Tensor& g, const std::vector<bool>& need) {
      Tensor g2 = blas_ready(g.reshape({-1, g.size(-1)}));
      Tensor gx, gw, gb;
      if (need[0]) gx = matmul_raw(g2, ws).reshape(xshape);
      if (need[1]) gw = matmul_raw(g2.t(), xs);
      if (need.size() > 2 && need[2]) gb = sum(g2, {0});
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return out;
}

}  // namespace siam

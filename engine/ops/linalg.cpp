// matmul and linear. Operands whose last two dims are row-major or column-major (a transposed view) go to
// BLAS as they are, with the matching transpose flag; anything else is made contiguous first.
// CUDA tensors go to cuBLASLt (kernels/cuda/gemm.h): f32 (TF32 when siam::cuda::allow_tf32()), f64, and bf16
// with f32 accumulation; a batch whose operands each step by one stride is one strided-batched call. linear's
// bias rides in the forward GEMM's epilogue and its gradient in the weight-gradient GEMM's epilogue (BGRADB).
// Inside an AutocastGuard, f32 CUDA operands are cast to bf16 and the results stay f32 (engine/core/autocast.h):
// one autograd node on the f32 inputs, whose backward casts the gradient to bf16 and returns f32 gradients.
#include "engine/ops/linalg.h"

#include <cstdint>

#include "engine/autograd/node.h"
#include "engine/core/autocast.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/gemm.h"
#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/gemm.h"
#endif

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
  if (t.is_cuda()) return detail::cuda_cast_contiguous(t, t.dtype(), "matmul");
  return t.contiguous();
}

// Devices and dtypes: every defined operand on a's device; CPU: f32/f64; CUDA: f32, f64 or bf16.
void check_operands(const char* op, const Tensor& a, std::initializer_list<Tensor> others) {
  for (const auto& t : others)
    if (t.defined()) ops::require_same_device(op, a, t);
  if (a.is_cuda()) {
    if constexpr (!ops::kCudaBuild) ops::require_cpu(op, {a});
    SIAM_CHECK(a.dtype() == DType::f32 || a.dtype() == DType::f64 || a.dtype() == DType::bf16, op,
               ": expects an f32, f64 or bf16 CUDA tensor, got ", dtype_name(a.dtype()), " of shape ",
               shape_str(a.shape()));
  } else {
    ops::require_floating(op, a);
  }
}

#if defined(SIAM_WITH_CUDA)
kernels::cuda::DenseType dense_type(DType t) {
  return t == DType::f64 ? kernels::cuda::DenseType::f64
                         : t == DType::bf16 ? kernels::cuda::DenseType::bf16 : kernels::cuda::DenseType::f32;
}
kernels::cuda::GemmArgs cuda_gemm_args(DType ab, DType d, int device) {
  kernels::cuda::GemmArgs p;
  p.ab_type = dense_type(ab);
  p.d_type = dense_type(d);
  p.allow_tf32 = cuda::allow_tf32();
  p.device = device;
  return p;
}

// D (m, n) = op(A) @ op(B) (+ epilogue) for 2-D CUDA tensors: A and B BLAS-ready (row- or column-major),
// D contiguous; op = transpose when ta / tb. Returns false when cuBLASLt has no algorithm for the epilogue.
bool cuda_mm(const Tensor& A, bool ta, const Tensor& B, bool tb, Tensor& D,
             kernels::cuda::GemmEpilogue epi = kernels::cuda::GemmEpilogue::none, void* bias = nullptr,
             double beta = 0.0) {
  const BlasMat la = blas_layout(A.size(0), A.size(1), A.stride(0), A.stride(1));
  const BlasMat lb = blas_layout(B.size(0), B.size(1), B.stride(0), B.stride(1));
  SIAM_ASSERT(la.ok && lb.ok && D.is_contiguous(), "cuda_mm operands not BLAS-ready");
  kernels::cuda::GemmArgs p = cuda_gemm_args(A.dtype(), D.dtype(), D.device().index);
  p.ta = ta != la.trans, p.tb = tb != lb.trans;
  p.m = D.size(0), p.n = D.size(1), p.k = ta ? A.size(0) : A.size(1);
  p.a = A.raw_data(), p.lda = la.ld;
  p.b = B.raw_data(), p.ldb = lb.ld;
  p.d = D.raw_data(), p.ldd = std::max<int64_t>(D.size(1), 1);
  p.beta = beta;
  p.epilogue = epi;
  p.bias = bias;
  detail::DeviceScratch scratch(D.device());
  return kernels::cuda::gemm(p, scratch.fn());
}

// A (rows, 1) column of ones of dtype dt on `dev` (the GEMM-only fallbacks of the bias epilogues).
Tensor cuda_ones_column(int64_t rows, DType dt, Device dev) {
  Tensor o = ones({rows, 1}).to(dev);
  return dt == DType::f32 ? o : detail::cuda_cast_contiguous(o, dt, "linear");
}
#endif

// out (batch..., n, m) = a (batch..., n, k) @ b (batch..., k, m); a, b already expanded to the batch shape.
// On CUDA, out may be f32 while a and b are bf16 (the autocast product).
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
#if defined(SIAM_WITH_CUDA)
  if (out.is_cuda()) {
    // One strided-batched call when each operand's batch offset is bi * stride; otherwise one call per item.
    auto uniform_stride = [&](const Tensor& t, int64_t& stride) {
      stride = batch > 1 ? batch_offset(t, 1) : 0;
      for (int64_t bi = 2; bi < batch; ++bi)
        if (batch_offset(t, bi) != bi * stride) return false;
      return true;
    };
    kernels::cuda::GemmArgs p = cuda_gemm_args(a.dtype(), out.dtype(), out.device().index);
    p.ta = la.trans, p.tb = lb.trans, p.m = n, p.n = m, p.k = k;
    p.lda = la.ld, p.ldb = lb.ld, p.ldd = std::max<int64_t>(m, 1);
    detail::DeviceScratch scratch(out.device());
    const int64_t ea = static_cast<int64_t>(a.element_size()), eo = static_cast<int64_t>(out.element_size());
    int64_t sa = 0, sb = 0;
    if (uniform_stride(a, sa) && uniform_stride(b, sb)) {
      p.a = a.raw_data(), p.b = b.raw_data(), p.d = out.raw_data();
      p.batch = batch, p.batch_stride_a = sa, p.batch_stride_b = sb, p.batch_stride_d = n * m;
      kernels::cuda::gemm(p, scratch.fn());
    } else {
      for (int64_t bi = 0; bi < batch; ++bi) {
        p.a = static_cast<const char*>(a.raw_data()) + batch_offset(a, bi) * ea;
        p.b = static_cast<const char*>(b.raw_data()) + batch_offset(b, bi) * ea;
        p.d = static_cast<char*>(out.raw_data()) + bi * n * m * eo;
        detail::DeviceScratch item(out.device());  // freed once enqueued (stream-ordered): no batch x workspace
        kernels::cuda::gemm(p, item.fn());
      }
    }
    return;
  }
#endif
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

// Forward of matmul for operands of rank >= 2 (no autograd); the result has dtype out_dt (a's dtype, or f32
// for bf16 CUDA operands under autocast).
Tensor matmul_raw(const Tensor& a_in, const Tensor& b_in, DType out_dt) {
  int64_t k = a_in.size(-1);
  SIAM_CHECK(b_in.size(-2) == k, "matmul: inner dims differ, ", shape_str(a_in.shape()), " @ ",
             shape_str(b_in.shape()));
  // A 2-D right operand and a contiguous left one: fold the batch into the rows (one large GEMM).
  if (b_in.dim() == 2 && a_in.dim() > 2 && a_in.is_contiguous()) {
    Tensor a2 = a_in.detach().reshape({-1, k});
    Tensor o2 = matmul_raw(a2, b_in, out_dt);
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
  Tensor out = empty(so, a.options().with_dtype(out_dt));
  batched_gemm(ea, eb, out);
  return out;
}
Tensor matmul_raw(const Tensor& a, const Tensor& b) { return matmul_raw(a, b, a.dtype()); }

// Backward of a @ b given g. ad / bd are the operands as they were multiplied (bf16 copies under autocast:
// then g is cast to g_dt = bf16 too; otherwise g_dt is g's own dtype), each saved only when the other
// operand's gradient needs it; the gradients have dtype out_dt and the operands' shapes.
std::vector<Tensor> matmul_backward(const Tensor& ad, const Tensor& bd, const Shape& ashape, const Shape& bshape,
                                    const Tensor& g_in, DType g_dt, DType out_dt, const std::vector<bool>& need) {
  Tensor g = g_in.dtype() == g_dt ? g_in : detail::cuda_cast_contiguous(g_in, g_dt, "matmul");
  Tensor ga, gb;
  if (need[0]) ga = sum_to(matmul_raw(g, bd.transpose(-1, -2), out_dt), ashape);
  if (need[1]) {
    if (bshape.size() == 2 && ashape.size() > 2) {
      // fold the batch: b's gradient is (sum over batch rows) a^T g
      Tensor a2 = ad.reshape({-1, ad.size(-1)}), g2 = g.reshape({-1, g.size(-1)});
      gb = matmul_raw(a2.t(), g2, out_dt);
    } else {
      gb = sum_to(matmul_raw(ad.transpose(-1, -2), g, out_dt), bshape);
    }
  }
  return {ga, gb};
}

Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  const bool autocast = detail::autocast_applies(a) && detail::autocast_applies(b);
  Tensor ad, bd;
  if (autocast) {  // the f32 tensors stay as they are; the product reads bf16 copies
    ad = detail::cuda_cast_contiguous(a, autocast_dtype(), "matmul");
    bd = detail::cuda_cast_contiguous(b, autocast_dtype(), "matmul");
  } else {
    ad = a.detach(), bd = b.detach();
  }
  const DType out_dt = a.dtype(), g_dt = ad.dtype();
  Tensor out = matmul_raw(ad, bd, out_dt);
  if (autograd::needs_grad({a, b})) {
    Tensor asave = b.requires_grad() ? ad : Tensor(), bsave = a.requires_grad() ? bd : Tensor();
    autograd::record("matmul", out, {a, b},
                     [asave, bsave, ashape = a.shape(), bshape = b.shape(), g_dt, out_dt](
                         const Tensor& g, const std::vector<bool>& need) {
                       return matmul_backward(asave, bsave, ashape, bshape, g, g_dt, out_dt, need);
                     });
  }
  return out;
}

#if defined(SIAM_WITH_CUDA)
// t (..., cols) on CUDA as (rows, cols): a view where one exists, else a contiguous copy made here.
Tensor rows_of(const Tensor& t, int64_t cols) {
  if (t.dim() == 2 || t.is_contiguous()) return t.reshape({-1, cols});
  return detail::cuda_cast_contiguous(t, t.dtype(), "linear").reshape({-1, cols});
}

// linear on CUDA: x2 (rows, in) @ w^T (in, out) + b through cuBLASLt, the bias in the epilogue.
Tensor linear_cuda(const Tensor& x, const Tensor& w, const Tensor& b) {
  using kernels::cuda::GemmEpilogue;
  const int64_t in = w.size(1), outf = w.size(0);
  const bool autocast = detail::autocast_applies(x) && detail::autocast_applies(w);
  const DType out_dt = x.dtype();
  Tensor xs, ws;  // the operands as multiplied (bf16 copies under autocast), xs (rows, in)
  if (autocast) {
    xs = detail::cuda_cast_contiguous(x, autocast_dtype(), "linear").reshape({-1, in});
    ws = detail::cuda_cast_contiguous(w, autocast_dtype(), "linear");
  } else {
    xs = blas_ready(rows_of(x.detach(), in));
    ws = blas_ready(w.detach());
  }
  const int64_t rows = xs.size(0);
  const DType cdt = xs.dtype();
  Tensor bias;  // out_dt, contiguous
  if (b.defined()) {
    bias = b.detach();
    if (!bias.is_contiguous()) bias = detail::cuda_cast_contiguous(bias, out_dt, "linear");
  }
  Tensor out = empty({rows, outf}, x.options());
  if (rows > 0) {
    // the epilogue reads the bias with vector loads: a bias view at an odd offset takes the unfused way
    const bool aligned = bias.defined() && reinterpret_cast<uintptr_t>(bias.raw_data()) % 16 == 0;
    if (!bias.defined()) {
      cuda_mm(xs, false, ws, true, out);
    } else if (!aligned || !cuda_mm(xs, false, ws, true, out, GemmEpilogue::bias, bias.raw_data())) {
      // no epilogue algorithm: out = ones (rows, 1) @ bias (1, out), then out += x2 @ w^T
      cuda_mm(cuda_ones_column(rows, out_dt, x.device()), false, bias.reshape({1, outf}), false, out);
      cuda_mm(xs, false, ws, true, out, GemmEpilogue::none, nullptr, 1.0);
    }
  }
  Shape out_shape = x.shape();
  out_shape.back() = outf;
  out = out.reshape(out_shape);
  if (autograd::needs_grad({x, w, b})) {
    Tensor xsave = w.requires_grad() ? xs : Tensor(), wsave = x.requires_grad() ? ws : Tensor();
    autograd::record("linear", out, {x, w, b},
                     [xsave, wsave, xshape = x.shape(), autocast, cdt, out_dt, rows, in, outf](
                         const Tensor& g, const std::vector<bool>& need) {
                       const bool ngx = need[0], ngw = need[1], ngb = need.size() > 2 && need[2];
                       Tensor g2 = rows_of(g, outf);
                       if (!g2.is_contiguous()) g2 = detail::cuda_cast_contiguous(g2, g2.dtype(), "linear");
                       Tensor gs = autocast ? detail::cuda_cast_contiguous(g2, cdt, "linear") : g2;
                       Tensor gx, gw, gb;
                       if (ngx) {
                         gx = empty({rows, in}, g.options().with_dtype(out_dt));
                         if (rows > 0) cuda_mm(gs, false, wsave, false, gx);
                         gx = gx.reshape(xshape);
                       }
                       bool gb_done = false;
                       if (ngb) gb = empty({outf}, g.options().with_dtype(out_dt));
                       if (ngw) {
                         gw = empty({outf, in}, g.options().with_dtype(out_dt));
                         if (ngb && rows > 0)
                           gb_done = cuda_mm(gs, true, xsave, false, gw, GemmEpilogue::bias_grad, gb.raw_data());
                         if (!gb_done) cuda_mm(gs, true, xsave, false, gw);
                       }
                       if (ngb && !gb_done) {
                         // gb (1, out) = ones (rows, 1)^T @ g2 (rows, out), accumulated in f32 from g2 as it came
                         Tensor gb2 = gb.reshape({1, outf});
                         cuda_mm(cuda_ones_column(rows, g2.dtype(), g2.device()), true, g2, false, gb2);
                       }
                       return std::vector<Tensor>{gx, gw, gb};
                     });
  }
  return out;
}
#endif

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_operands("matmul", a, {b});
  ops::require_same_dtype("matmul", a, b);
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
  check_operands("linear", x, {w, b});
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
#if defined(SIAM_WITH_CUDA)
  if (x.is_cuda()) return linear_cuda(x, w, b);
#endif
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

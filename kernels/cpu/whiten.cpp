// Batch whitening: reference and fast CPU path (see whiten.h).
#include "kernels/cpu/whiten.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "kernels/cpu/gemm.h"

// OpenBLAS's LAPACK (written in C in OpenBLAS, so no hidden Fortran string lengths are read; passing them is
// harmless either way). Column-major: the row-major lower triangle is LAPACK's upper one.
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda, int* info, size_t uplo_len,
             size_t diag_len);
}

namespace siam::kernels::cpu {

namespace {

constexpr int64_t kColBlock = 64;  // features per OpenMP work item in the column reductions

template <class T> double pivot_tol(int64_t d) { return double(d) * double(std::numeric_limits<T>::epsilon()); }

// Column means of x (m, d) in double, by blocks of columns (OpenMP); out (d).
template <class T> void column_means(int64_t m, int64_t d, const T* x, double* out) {
  const int64_t blocks = (d + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (m * d > (1 << 15))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kColBlock, w = std::min(kColBlock, d - c0);
    double s[kColBlock] = {};
    for (int64_t r = 0; r < m; ++r) {
      const T* xr = x + r * d + c0;
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) s[k] += double(xr[k]);
    }
    for (int64_t k = 0; k < w; ++k) out[c0 + k] = s[k] / double(m);
  }
}

// xc (m, d) = x - mean_rows(x); xc may alias x.
template <class T> void center(int64_t m, int64_t d, const T* x, T* xc) {
  std::vector<double> mean(d);
  column_means(m, d, x, mean.data());
  std::vector<T> mu(d);
  for (int64_t k = 0; k < d; ++k) mu[k] = static_cast<T>(mean[k]);
#pragma omp parallel for schedule(static) if (m * d > (1 << 15))
  for (int64_t r = 0; r < m; ++r) {
    const T* xr = x + r * d;
    T* o = xc + r * d;
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) o[k] = xr[k] - mu[k];
  }
}

// Unblocked Cholesky in double of a (n, n) row-major (lower triangle read): l (n, n) lower, zero above.
// Stops at the first pivot l_jj^2 <= tol * a_jj (or not finite) and reports it.
WhitenPivot cholesky_unblocked(int64_t n, const double* a, double tol, double* l) {
  WhitenPivot res;
  std::fill(l, l + n * n, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    double s = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) s -= l[j * n + k] * l[j * n + k];
    if (!(s > tol * a[j * n + j]) || !std::isfinite(s)) {
      res.index = j;
      res.pivot = s;
      res.diag = a[j * n + j];
      return res;
    }
    const double ljj = std::sqrt(s);
    l[j * n + j] = ljj;
    for (int64_t i = j + 1; i < n; ++i) {
      double t = a[i * n + j];
      for (int64_t k = 0; k < j; ++k) t -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = t / ljj;
    }
  }
  return res;
}

// sigma (d, d) double = xc^T xc / (m - 1) + eps I, the product by gemm in T.
template <class T> void covariance(int64_t m, int64_t d, const T* xc, double eps, double* sigma) {
  std::vector<T> s(static_cast<size_t>(d * d));  // (d, d)
  gemm<T>(true, false, d, d, m, static_cast<T>(1.0 / double(m - 1)), xc, d, xc, d, T(0), s.data(), d);
  for (int64_t i = 0; i < d * d; ++i) sigma[i] = double(s[i]);
  for (int64_t i = 0; i < d; ++i) sigma[i * d + i] += eps;
}

// Cholesky factor of sigma (d, d) in double through LAPACK, into l (lower, zero above); the pivot check of
// whiten.h. On failure the unblocked loop reruns to name the first failing pivot and its value.
WhitenPivot factor(int64_t d, const double* sigma, double tol, double* l) {
  std::copy(sigma, sigma + d * d, l);
  const int n = static_cast<int>(d);
  int info = 0;
  dpotrf_("U", &n, l, &n, &info, 1);
  if (info == 0) {
    for (int64_t j = 0; j < d; ++j) {
      const double p = l[j * d + j] * l[j * d + j];
      if (!(p > tol * sigma[j * d + j]) || !std::isfinite(p)) return {j, p, sigma[j * d + j]};
    }
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = i + 1; j < d; ++j) l[i * d + j] = 0.0;
    return {};
  }
  // LAPACK stopped at the leading minor of order `info`: the unblocked loop names the pivot and its value.
  std::vector<double> tmp(static_cast<size_t>(d * d));
  WhitenPivot res = cholesky_unblocked(d, sigma, tol, tmp.data());
  if (res.index < 0) res = {info - 1, 0.0, sigma[(info - 1) * (d + 1)]};
  return res;
}

// Subtracts the column means of g (m, d) in place.
template <class T> void subtract_column_means(int64_t m, int64_t d, T* g) { center(m, d, g, g); }

// ---- naive products for the reference (double, row-major) ----

// c (n, p) = op(a) (n, k) @ op(b) (k, p)
void mm(bool ta, bool tb, int64_t n, int64_t p, int64_t k, const double* a, const double* b, double* c) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < p; ++j) {
      double s = 0;
      for (int64_t q = 0; q < k; ++q) s += (ta ? a[q * n + i] : a[i * k + q]) * (tb ? b[j * k + q] : b[q * p + j]);
      c[i * p + j] = s;
    }
}

}  // namespace

template <class T>
WhitenPivot whiten_ref(int64_t m, int64_t d, const T* x, double eps, bool algo_ns, int iters, T* y, const T* g, T* dx) {
  using V = std::vector<double>;
  const size_t dd = static_cast<size_t>(d * d), md = static_cast<size_t>(m * d);
  V xc(md), sigma(dd, 0.0), l(dd);
  for (int64_t k = 0; k < d; ++k) {
    double mu = 0;
    for (int64_t r = 0; r < m; ++r) mu += double(x[r * d + k]);
    mu /= double(m);
    for (int64_t r = 0; r < m; ++r) xc[r * d + k] = double(x[r * d + k]) - mu;
  }
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (int64_t r = 0; r < m; ++r) s += xc[r * d + i] * xc[r * d + j];
      sigma[i * d + j] = s / double(m - 1) + (i == j ? eps : 0.0);
    }
  WhitenPivot piv = cholesky_unblocked(d, sigma.data(), pivot_tol<T>(d), l.data());
  if (piv.index >= 0) return piv;
  V w(dd, 0.0), yv(md);
  double trace = 0;
  std::vector<V> ps;  // P_1 .. P_iters
  V sn(dd);
  if (!algo_ns) {
    for (int64_t c = 0; c < d; ++c)  // column c of L^{-1}: forward substitution of L w = e_c
      for (int64_t i = c; i < d; ++i) {
        double s = i == c ? 1.0 : 0.0;
        for (int64_t k = c; k < i; ++k) s -= l[i * d + k] * w[k * d + c];
        w[i * d + c] = s / l[i * d + i];
      }
  } else {
    for (int64_t i = 0; i < d; ++i) trace += sigma[i * d + i];
    for (size_t i = 0; i < dd; ++i) sn[i] = sigma[i] / trace;
    V p(dd);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) p[i * d + j] = (i == j ? 1.5 : 0.0) - 0.5 * sn[i * d + j];
    ps.push_back(p);
    for (int k = 1; k < iters; ++k) {
      V p2(dd), p3(dd), p3s(dd), next(dd);
      mm(false, false, d, d, d, p.data(), p.data(), p2.data());
      mm(false, false, d, d, d, p2.data(), p.data(), p3.data());
      mm(false, false, d, d, d, p3.data(), sn.data(), p3s.data());
      for (size_t i = 0; i < dd; ++i) next[i] = 1.5 * p[i] - 0.5 * p3s[i];
      p = next;
      ps.push_back(p);
    }
    for (size_t i = 0; i < dd; ++i) w[i] = p[i] / std::sqrt(trace);
  }
  mm(false, true, m, d, d, xc.data(), w.data(), yv.data());
  for (size_t i = 0; i < md; ++i) y[i] = static_cast<T>(yv[i]);
  if (!g) return piv;

  V gv(g, g + md), sbar(dd, 0.0);  // sbar = dL/dSigma
  if (!algo_ns) {
    V f(dd), phi(dd), tmp(dd);
    mm(true, false, d, d, m, gv.data(), yv.data(), f.data());  // F = G^T Y
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) phi[i * d + j] = j < i ? f[i * d + j] : j == i ? 0.5 * f[i * d + j] : 0.0;
    mm(false, false, d, d, d, phi.data(), w.data(), tmp.data());
    mm(true, false, d, d, d, w.data(), tmp.data(), sbar.data());
    for (auto& v : sbar) v = -v;
  } else {
    V wbar(dd), b(dd), snbar(dd, 0.0);
    mm(true, false, d, d, m, gv.data(), xc.data(), wbar.data());  // dW = G^T Xc
    const double rs = 1.0 / std::sqrt(trace);
    double tbar = 0;  // dL/ds
    for (size_t i = 0; i < dd; ++i) {
      b[i] = wbar[i] * rs;
      tbar += -0.5 * rs * rs * rs * wbar[i] * ps.back()[i];
    }
    for (int k = iters - 1; k >= 1; --k) {
      const V& p = ps[k - 1];
      V p2(dd), p3(dd), p2s(dd), psn(dd), t1(dd), t2(dd), pbar(dd);
      mm(false, false, d, d, d, p.data(), p.data(), p2.data());
      mm(false, false, d, d, d, p2.data(), p.data(), p3.data());
      mm(false, false, d, d, d, p2.data(), sn.data(), p2s.data());
      mm(false, false, d, d, d, p.data(), sn.data(), psn.data());
      for (size_t i = 0; i < dd; ++i) pbar[i] = 1.5 * b[i];
      mm(false, true, d, d, d, b.data(), p2s.data(), t1.data());  // B (P^2 Sn)^T
      for (size_t i = 0; i < dd; ++i) pbar[i] -= 0.5 * t1[i];
      mm(true, false, d, d, d, p.data(), b.data(), t1.data());  // P^T B (P Sn)^T
      mm(false, true, d, d, d, t1.data(), psn.data(), t2.data());
      for (size_t i = 0; i < dd; ++i) pbar[i] -= 0.5 * t2[i];
      mm(true, false, d, d, d, p2.data(), b.data(), t1.data());  // (P^2)^T B Sn^T
      mm(false, true, d, d, d, t1.data(), sn.data(), t2.data());
      for (size_t i = 0; i < dd; ++i) pbar[i] -= 0.5 * t2[i];
      mm(true, false, d, d, d, p3.data(), b.data(), t1.data());  // dSn += -(P^3)^T B / 2
      for (size_t i = 0; i < dd; ++i) snbar[i] -= 0.5 * t1[i];
      b = pbar;
    }
    for (size_t i = 0; i < dd; ++i) snbar[i] -= 0.5 * b[i];  // P_1 = (3 I - Sn) / 2
    for (size_t i = 0; i < dd; ++i) tbar -= snbar[i] * sn[i] / trace;
    for (size_t i = 0; i < dd; ++i) sbar[i] = snbar[i] / trace;
    for (int64_t i = 0; i < d; ++i) sbar[i * d + i] += tbar;
  }
  V s2(dd), dxc(md), t(md);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) s2[i * d + j] = (sbar[i * d + j] + sbar[j * d + i]) / double(m - 1);
  mm(false, false, m, d, d, gv.data(), w.data(), dxc.data());
  mm(false, false, m, d, d, xc.data(), s2.data(), t.data());
  for (size_t i = 0; i < md; ++i) dxc[i] += t[i];
  for (int64_t k = 0; k < d; ++k) {
    double mu = 0;
    for (int64_t r = 0; r < m; ++r) mu += dxc[r * d + k];
    mu /= double(m);
    for (int64_t r = 0; r < m; ++r) dx[r * d + k] = static_cast<T>(dxc[r * d + k] - mu);
  }
  return piv;
}

template <class T>
WhitenPivot whiten_cholesky_forward(int64_t m, int64_t d, const T* x, double eps, T* xc, T* w, T* y) {
  center(m, d, x, xc);
  std::vector<double> sigma(static_cast<size_t>(d * d)), l(static_cast<size_t>(d * d));  // (d, d)
  covariance(m, d, xc, eps, sigma.data());
  WhitenPivot piv = factor(d, sigma.data(), pivot_tol<T>(d), l.data());
  if (piv.index >= 0) return piv;
  const int n = static_cast<int>(d);
  int info = 0;
  dtrtri_("U", "N", &n, l.data(), &n, &info, 1, 1);  // l <- L^{-1} (row-major lower)
  for (int64_t i = 0; i < d * d; ++i) w[i] = static_cast<T>(l[i]);
  gemm<T>(false, true, m, d, d, T(1), xc, d, w, d, T(0), y, d);  // Y = Xc W^T
  return piv;
}

template <class T> WhitenPivot whiten_inverse_factor(int64_t d, const double* sigma, double* w) {
  std::vector<double> l(static_cast<size_t>(d * d));  // (d, d)
  WhitenPivot piv = factor(d, sigma, pivot_tol<T>(d), l.data());
  if (piv.index >= 0) return piv;
  const int n = static_cast<int>(d);
  int info = 0;
  dtrtri_("U", "N", &n, l.data(), &n, &info, 1, 1);  // l <- L^{-1} (row-major lower)
  std::copy(l.begin(), l.end(), w);
  return piv;
}

template <class T> WhitenPivot whiten_pivot_check(int64_t d, const double* sigma) {
  std::vector<double> l(static_cast<size_t>(d * d));  // (d, d)
  return factor(d, sigma, pivot_tol<T>(d), l.data());
}

template <class T> void whiten_cholesky_backward(int64_t m, int64_t d, const T* g, const T* xc, const T* w, T* dx) {
  const size_t dd = static_cast<size_t>(d * d);
  std::vector<T> a(dd), f(dd), tmp(dd);                                       // (d, d) each
  gemm<T>(true, false, d, d, m, T(1), g, d, xc, d, T(0), a.data(), d);        // G^T Xc
  gemm<T>(false, true, d, d, d, T(1), a.data(), d, w, d, T(0), f.data(), d);  // F = G^T Y = (G^T Xc) W^T
  for (int64_t i = 0; i < d; ++i) {                                           // Phi(F)
    T* fi = f.data() + i * d;
    fi[i] *= T(0.5);
    for (int64_t j = i + 1; j < d; ++j) fi[j] = T(0);
  }
  gemm<T>(false, false, d, d, d, T(1), f.data(), d, w, d, T(0), tmp.data(), d);  // Phi(F) W
  gemm<T>(true, false, d, d, d, T(1), w, d, tmp.data(), d, T(0), a.data(), d);   // S = W^T Phi(F) W; dSigma = -S
  const T scale = static_cast<T>(-1.0 / double(m - 1));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) tmp[i * d + j] = scale * (a[i * d + j] + a[j * d + i]);
  gemm<T>(false, false, m, d, d, T(1), g, d, w, d, T(0), dx, d);            // G W
  gemm<T>(false, false, m, d, d, T(1), xc, d, tmp.data(), d, T(1), dx, d);  // + Xc (dSigma + dSigma^T) / (M-1)
  subtract_column_means(m, d, dx);
}

template <class T>
WhitenPivot whiten_ns_forward(int64_t m, int64_t d, const T* x, double eps, int iters, T* xc, T* sn, T* p,
                              double* trace, T* y) {
  center(m, d, x, xc);
  const size_t dd = static_cast<size_t>(d * d);
  std::vector<double> sigma(dd), l(dd);  // (d, d)
  covariance(m, d, xc, eps, sigma.data());
  WhitenPivot piv = factor(d, sigma.data(), pivot_tol<T>(d), l.data());
  if (piv.index >= 0) return piv;
  double tr = 0;
  for (int64_t i = 0; i < d; ++i) tr += sigma[i * d + i];
  *trace = tr;
  for (size_t i = 0; i < dd; ++i) sn[i] = static_cast<T>(sigma[i] / tr);
  for (int64_t i = 0; i < d; ++i)  // P_1 = (3 I - Sn) / 2
    for (int64_t j = 0; j < d; ++j) p[i * d + j] = (i == j ? T(1.5) : T(0)) - T(0.5) * sn[i * d + j];
  std::vector<T> p2(dd), p3(dd);
  for (int k = 1; k < iters; ++k) {
    const T* pk = p + (k - 1) * dd;
    T* next = p + k * dd;
    gemm<T>(false, false, d, d, d, T(1), pk, d, pk, d, T(0), p2.data(), d);
    gemm<T>(false, false, d, d, d, T(1), p2.data(), d, pk, d, T(0), p3.data(), d);
    for (size_t i = 0; i < dd; ++i) next[i] = T(1.5) * pk[i];
    gemm<T>(false, false, d, d, d, T(-0.5), p3.data(), d, sn, d, T(1), next, d);
  }
  const T* pt = p + (iters - 1) * dd;
  gemm<T>(false, true, m, d, d, static_cast<T>(1.0 / std::sqrt(tr)), xc, d, pt, d, T(0), y, d);  // Xc W^T
  return piv;
}

template <class T>
void whiten_ns_backward(int64_t m, int64_t d, int iters, const T* g, const T* xc, const T* sn, const T* p, double trace,
                        T* dx) {
  const size_t dd = static_cast<size_t>(d * d);
  std::vector<T> b(dd), snbar(dd, T(0)), pbar(dd), p2(dd), p3(dd), p2s(dd), psn(dd), t1(dd);  // (d, d) each
  const T* pt = p + (iters - 1) * dd;
  const double rs = 1.0 / std::sqrt(trace);
  gemm<T>(true, false, d, d, m, T(1), g, d, xc, d, T(0), b.data(), d);  // dW = G^T Xc
  double tbar = 0;                                                      // dL/ds
  for (size_t i = 0; i < dd; ++i) tbar += double(b[i]) * double(pt[i]);
  tbar *= -0.5 * rs * rs * rs;
  for (size_t i = 0; i < dd; ++i) b[i] = static_cast<T>(double(b[i]) * rs);  // dP_iters
  for (int k = iters - 1; k >= 1; --k) {  // P_{k+1} = 1.5 P - 0.5 P P P Sn with P = P_k
    const T* pk = p + (k - 1) * dd;
    gemm<T>(false, false, d, d, d, T(1), pk, d, pk, d, T(0), p2.data(), d);
    gemm<T>(false, false, d, d, d, T(1), p2.data(), d, pk, d, T(0), p3.data(), d);
    gemm<T>(false, false, d, d, d, T(1), p2.data(), d, sn, d, T(0), p2s.data(), d);
    gemm<T>(false, false, d, d, d, T(1), pk, d, sn, d, T(0), psn.data(), d);
    for (size_t i = 0; i < dd; ++i) pbar[i] = T(1.5) * b[i];
    gemm<T>(false, true, d, d, d, T(-0.5), b.data(), d, p2s.data(), d, T(1), pbar.data(), d);   // B (P^2 Sn)^T
    gemm<T>(true, false, d, d, d, T(1), pk, d, b.data(), d, T(0), t1.data(), d);                // P^T B
    gemm<T>(false, true, d, d, d, T(-0.5), t1.data(), d, psn.data(), d, T(1), pbar.data(), d);  //   (P Sn)^T
    gemm<T>(true, false, d, d, d, T(1), p2.data(), d, b.data(), d, T(0), t1.data(), d);         // (P^2)^T B
    gemm<T>(false, true, d, d, d, T(-0.5), t1.data(), d, sn, d, T(1), pbar.data(), d);          //   Sn^T
    gemm<T>(true, false, d, d, d, T(-0.5), p3.data(), d, b.data(), d, T(1), snbar.data(), d);   // dSn
    std::swap(b, pbar);
  }
  for (size_t i = 0; i < dd; ++i) snbar[i] -= T(0.5) * b[i];  // P_1 = (3 I - Sn) / 2
  double dot = 0;
  for (size_t i = 0; i < dd; ++i) dot += double(snbar[i]) * double(sn[i]);
  tbar -= dot / trace;  // Sn = Sigma / s
  // dSigma = dSn / s + tbar I; t1 = (dSigma + dSigma^T) / (M - 1)
  const double c = 1.0 / (trace * double(m - 1));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j)
      t1[i * d + j] = static_cast<T>(c * (double(snbar[i * d + j]) + double(snbar[j * d + i])) +
                                     (i == j ? 2.0 * tbar / double(m - 1) : 0.0));
  gemm<T>(false, false, m, d, d, static_cast<T>(rs), g, d, pt, d, T(0), dx, d);  // G W, W = P_iters / sqrt(s)
  gemm<T>(false, false, m, d, d, T(1), xc, d, t1.data(), d, T(1), dx, d);
  subtract_column_means(m, d, dx);
}

#define SIAM_WHITEN_INSTANTIATE(T)                                                                             \
  template WhitenPivot whiten_ref<T>(int64_t, int64_t, const T*, double, bool, int, T*, const T*, T*);         \
  template WhitenPivot whiten_cholesky_forward<T>(int64_t, int64_t, const T*, double, T*, T*, T*);             \
  template WhitenPivot whiten_inverse_factor<T>(int64_t, const double*, double*);                              \
  template WhitenPivot whiten_pivot_check<T>(int64_t, const double*);                                          \
  template void whiten_cholesky_backward<T>(int64_t, int64_t, const T*, const T*, const T*, T*);               \
  template WhitenPivot whiten_ns_forward<T>(int64_t, int64_t, const T*, double, int, T*, T*, T*, double*, T*); \
  template void whiten_ns_backward<T>(int64_t, int64_t, int, const T*, const T*, const T*, const T*, double, T*);
SIAM_WHITEN_INSTANTIATE(float)
SIAM_WHITEN_INSTANTIATE(double)
#undef SIAM_WHITEN_INSTANTIATE

}  // namespace siam::kernels::cpu

// Normalized MSE and VICReg terms: references and fast CPU paths (see consistency.h).
#include "kernels/cpu/consistency.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/nmse_math.h"
#include "kernels/common/vicreg_math.h"
#include "kernels/cpu/gemm.h"

namespace siam::kernels::cpu {

namespace {

constexpr double kNormEps = kNmseNormEps;  // as engine normalize's default
constexpr int64_t kColBlock = 64;   // features per OpenMP work item in the column reductions
constexpr int64_t kParallelMin = 1 << 15;

// Sum of v in index order (deterministic whatever the thread count that filled it).
double ordered_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

// Column means and unbiased variances of z (n, d) in double; zc (n, d) = z - mean; mean, var (d) in T;
// var_d (d) in double.
template <class T> void center_stats(int64_t n, int64_t d, const T* z, T* zc, T* mean, T* var, double* var_d) {
  const int64_t blocks = (d + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (n * d > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kColBlock, w = std::min(kColBlock, d - c0);
    double s[kColBlock] = {}, v[kColBlock] = {};
    for (int64_t r = 0; r < n; ++r) {
      const T* zr = z + r * d + c0;
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) s[k] += double(zr[k]);
    }
    T mu[kColBlock];
    for (int64_t k = 0; k < w; ++k) {
      mu[k] = static_cast<T>(s[k] / double(n));
      mean[c0 + k] = mu[k];
    }
    for (int64_t r = 0; r < n; ++r) {
      const T* zr = z + r * d + c0;
      T* o = zc + r * d + c0;
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) {
        o[k] = zr[k] - mu[k];
        v[k] += double(o[k]) * double(o[k]);
      }
    }
    for (int64_t k = 0; k < w; ++k) {
      var_d[c0 + k] = v[k] / double(n - 1);
      var[c0 + k] = static_cast<T>(var_d[c0 + k]);
    }
  }
}

// Sum of squares of a (r, c) row-major, rows in parallel, summed in row order; `skip_diag` leaves a_ii out.
template <class T> double sum_squares(int64_t r, int64_t c, const T* a, bool skip_diag) {
  std::vector<double> rows(r);
#pragma omp parallel for schedule(static) if (r * c > kParallelMin)
  for (int64_t i = 0; i < r; ++i) {
    const T* ai = a + i * c;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < c; ++j) s += double(ai[j]) * double(ai[j]);
    if (skip_diag) s -= double(ai[i]) * double(ai[i]);
    rows[i] = s;
  }
  return ordered_sum(rows);
}

}  // namespace

// ---- normalized MSE ----

template <class T> double nmse_ref(int64_t n, int64_t d, const T* p, const T* z, T* dp, T* dz) {
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* pi = p + i * d;
    const T* zi = z + i * d;
    double pp = 0, zz = 0, pz = 0;
    for (int64_t j = 0; j < d; ++j) {
      pp += double(pi[j]) * double(pi[j]);
      zz += double(zi[j]) * double(zi[j]);
      pz += double(pi[j]) * double(zi[j]);
    }
    const double np = std::sqrt(pp), nz = std::sqrt(zz);
    const double rp = 1.0 / std::max(np, kNormEps), rz = 1.0 / std::max(nz, kNormEps);
    const double c = pz * rp * rz;
    loss += 2.0 - 2.0 * c;
    const double coef = -2.0 / double(n);
    for (int64_t j = 0; j < d; ++j) {
      const double pn = double(pi[j]) * rp, zn = double(zi[j]) * rz;
      if (dp) dp[i * d + j] = static_cast<T>(coef * rp * (zn - (np > kNormEps ? c : 0.0) * pn));
      if (dz) dz[i * d + j] = static_cast<T>(coef * rz * (pn - (nz > kNormEps ? c : 0.0) * zn));
    }
  }
  return loss / double(n);
}

template <class T> double nmse_forward(int64_t n, int64_t d, const T* p, const T* z, T* stats) {
  std::vector<double> rows(n);
#pragma omp parallel for schedule(static) if (n * d > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T* pi = p + i * d;
    const T* zi = z + i * d;
    double pp = 0, zz = 0, pz = 0;
#pragma omp simd reduction(+ : pp, zz, pz)
    for (int64_t j = 0; j < d; ++j) {
      const double a = double(pi[j]), b = double(zi[j]);
      pp += a * a;
      zz += b * b;
      pz += a * b;
    }
    const double np = std::sqrt(pp), nz = std::sqrt(zz);
    const double c = nmse_cos(pp, zz, pz);
    stats[3 * i] = static_cast<T>(np);
    stats[3 * i + 1] = static_cast<T>(nz);
    stats[3 * i + 2] = static_cast<T>(c);
    rows[i] = 2.0 - 2.0 * c;
  }
  return ordered_sum(rows) / double(n);
}

template <class T>
void nmse_backward(int64_t n, int64_t d, T grad, const T* p, const T* z, const T* stats, T* dp, T* dz) {
  const double coef = -2.0 * double(grad) / double(n);
#pragma omp parallel for schedule(static) if (n * d > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const double np = double(stats[3 * i]), nz = double(stats[3 * i + 1]), c = double(stats[3 * i + 2]);
    const NmseCoefs k = nmse_coefs(coef, np, nz, c);
    const T* pi = p + i * d;
    const T* zi = z + i * d;
    if (dp) {
      // dp = coef rp (zn - c pn) = (coef rp rz) z - (coef rp^2 c) p
      const T a = static_cast<T>(k.a), b = static_cast<T>(k.bp);
      T* o = dp + i * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) o[j] = a * zi[j] - b * pi[j];
    }
    if (dz) {
      const T a = static_cast<T>(k.a), b = static_cast<T>(k.bz);
      T* o = dz + i * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) o[j] = a * pi[j] - b * zi[j];
    }
  }
}

// ---- VICReg ----

template <class T>
VicregValues vicreg_ref(int64_t n, int64_t d, const T* z1, const T* z2, double eps, const double grad[3], T* dz1,
                        T* dz2) {
  VicregValues out;
  for (int64_t i = 0; i < n * d; ++i)
    out.invariance += (double(z1[i]) - double(z2[i])) * (double(z1[i]) - double(z2[i]));
  out.invariance /= double(n * d);
  for (int branch = 0; branch < 2; ++branch) {
    const T* z = branch == 0 ? z1 : z2;
    T* dz = branch == 0 ? dz1 : dz2;
    std::vector<double> zc(n * d), var(d), c(d * d);
    for (int64_t j = 0; j < d; ++j) {
      double mu = 0;
      for (int64_t r = 0; r < n; ++r) mu += double(z[r * d + j]);
      mu /= double(n);
      for (int64_t r = 0; r < n; ++r) zc[r * d + j] = double(z[r * d + j]) - mu;
    }
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) {
        double s = 0;
        for (int64_t r = 0; r < n; ++r) s += zc[r * d + i] * zc[r * d + j];
        c[i * d + j] = s / double(n - 1);
      }
    for (int64_t j = 0; j < d; ++j) {
      var[j] = c[j * d + j];
      out.variance += std::max(0.0, 1.0 - std::sqrt(var[j] + eps)) / double(d) / 2.0;
      for (int64_t i = 0; i < d; ++i)
        if (i != j) out.covariance += c[i * d + j] * c[i * d + j] / double(d);
    }
    if (!dz) continue;
    const double sign = branch == 0 ? 1.0 : -1.0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < d; ++j) {
        double g = sign * grad[0] * 2.0 * (double(z1[r * d + j]) - double(z2[r * d + j])) / double(n * d);
        const double sd = std::sqrt(var[j] + eps);
        if (sd < 1.0) g -= grad[1] * zc[r * d + j] / (2.0 * double(d) * sd * double(n - 1));
        double cc = 0;  // (Zc (C - diag C))_rj
        for (int64_t k = 0; k < d; ++k)
          if (k != j) cc += zc[r * d + k] * c[k * d + j];
        g += grad[2] * 4.0 / (double(d) * double(n - 1)) * cc;
        dz[r * d + j] = static_cast<T>(g);
      }
  }
  return out;
}

template <class T>
VicregValues vicreg_forward(int64_t n, int64_t d, const T* z1, const T* z2, double eps, T* zc1, T* zc2, T* mean1,
                            T* mean2, T* var1, T* var2, T* gram1, T* gram2) {
  VicregValues out;
  {
    std::vector<double> rows(n);
#pragma omp parallel for schedule(static) if (n * d > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const T* a = z1 + i * d;
      const T* b = z2 + i * d;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < d; ++j) {
        const double t = double(a[j]) - double(b[j]);
        s += t * t;
      }
      rows[i] = s;
    }
    out.invariance = ordered_sum(rows) / double(n * d);
  }
  const bool gram_form = n < d;
  const int64_t g = vicreg_gram_dim(n, d);
  std::vector<double> var_d(d);
  for (int branch = 0; branch < 2; ++branch) {
    const T* z = branch == 0 ? z1 : z2;
    T* zc = branch == 0 ? zc1 : zc2;
    T* gram = branch == 0 ? gram1 : gram2;
    center_stats(n, d, z, zc, branch == 0 ? mean1 : mean2, branch == 0 ? var1 : var2, var_d.data());
    double v = 0, diag2 = 0;
    for (int64_t j = 0; j < d; ++j) {
      v += vicreg_hinge(var_d[j], eps);
      diag2 += var_d[j] * var_d[j];
    }
    out.variance += v / double(d) / 2.0;
    if (gram_form) {
      gemm<T>(false, true, n, n, d, T(1), zc, d, zc, d, T(0), gram, n);  // G = Zc Zc^T (n, n)
      const double nm1 = double(n - 1);
      out.covariance += (sum_squares(g, g, gram, false) / (nm1 * nm1) - diag2) / double(d);
    } else {
      gemm<T>(true, false, d, d, n, static_cast<T>(1.0 / double(n - 1)), zc, d, zc, d, T(0), gram, d);  // C (d, d)
      out.covariance += sum_squares(g, g, gram, true) / double(d);
    }
  }
  return out;
}

template <class T>
void vicreg_backward(int64_t n, int64_t d, double eps, const double grad[3], const T* zc1, const T* zc2, const T* mean1,
                     const T* mean2, const T* var1, const T* var2, const T* gram1, const T* gram2, T* dz1, T* dz2) {
  const bool gram_form = n < d;
  const double nm1 = double(n - 1), dd = double(d);
  std::vector<T> coef(d), mdiff(d);  // per-feature factor of Zc; mean1 - mean2
  for (int64_t j = 0; j < d; ++j) mdiff[j] = mean1[j] - mean2[j];
  for (int branch = 0; branch < 2; ++branch) {
    const T* zc = branch == 0 ? zc1 : zc2;
    const T* var = branch == 0 ? var1 : var2;
    const T* gram = branch == 0 ? gram1 : gram2;
    T* dz = branch == 0 ? dz1 : dz2;
    if (!dz) continue;
    const bool cov = grad[2] != 0.0;
    if (cov) {
      if (gram_form)  // Zc C = G Zc / (N - 1)
        gemm<T>(false, false, n, d, n, static_cast<T>(grad[2] * 4.0 / (dd * nm1 * nm1)), gram, n, zc, d, T(0), dz, d);
      else
        gemm<T>(false, false, n, d, d, static_cast<T>(grad[2] * 4.0 / (dd * nm1)), zc, d, gram, d, T(0), dz, d);
    }
    for (int64_t j = 0; j < d; ++j) {
      const double cjj = gram_form ? double(var[j]) : double(gram[j * d + j]);
      coef[j] = static_cast<T>(vicreg_zc_coef(cjj, double(var[j]), eps, grad[1], grad[2], dd, nm1));
    }
    const T ci = static_cast<T>((branch == 0 ? 2.0 : -2.0) * grad[0] / (double(n) * dd));
#pragma omp parallel for schedule(static) if (n * d > kParallelMin)
    for (int64_t r = 0; r < n; ++r) {
      const T* a = zc1 + r * d;
      const T* b = zc2 + r * d;
      const T* zr = zc + r * d;
      T* o = dz + r * d;
      if (cov) {
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) o[j] += zr[j] * coef[j] + ci * ((a[j] - b[j]) + mdiff[j]);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) o[j] = zr[j] * coef[j] + ci * ((a[j] - b[j]) + mdiff[j]);
      }
    }
  }
}

#define SIAM_CONSISTENCY_INSTANTIATE(T)                                                                               \
  template double nmse_ref<T>(int64_t, int64_t, const T*, const T*, T*, T*);                                          \
  template double nmse_forward<T>(int64_t, int64_t, const T*, const T*, T*);                                          \
  template void nmse_backward<T>(int64_t, int64_t, T, const T*, const T*, const T*, T*, T*);                          \
  template VicregValues vicreg_ref<T>(int64_t, int64_t, const T*, const T*, double, const double[3], T*, T*);         \
  template VicregValues vicreg_forward<T>(int64_t, int64_t, const T*, const T*, double, T*, T*, T*, T*, T*, T*, T*,   \
                                          T*);                                                                        \
  template void vicreg_backward<T>(int64_t, int64_t, double, const double[3], const T*, const T*, const T*, const T*, \
                                   const T*, const T*, const T*, const T*, T*, T*);
SIAM_CONSISTENCY_INSTANTIATE(float)
SIAM_CONSISTENCY_INSTANTIATE(double)
#undef SIAM_CONSISTENCY_INSTANTIATE

}  // namespace siam::kernels::cpu

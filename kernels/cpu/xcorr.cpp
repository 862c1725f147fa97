// Barlow Twins cross-correlation loss: reference and fused CPU path (see xcorr.h).
#include "kernels/cpu/xcorr.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/xcorr_math.h"
#include "kernels/cpu/gemm.h"

namespace siam::kernels::cpu {

namespace {

constexpr int64_t kColBlock = 64;  // features per OpenMP work item in the column reductions

// zh (n, d) = (x - mean) * rstd per column; rstd (d). Two passes over each block of columns, in double.
template <class T>
void standardize(int64_t n, int64_t d, const T* x, double eps, T* zh, T* rstd) {
  const int64_t blocks = (d + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (n * d > (1 << 15))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kColBlock, w = std::min(kColBlock, d - c0);
    double mean[kColBlock] = {}, var[kColBlock] = {};
    for (int64_t r = 0; r < n; ++r) {
      const T* xr = x + r * d + c0;
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) mean[k] += double(xr[k]);
    }
    for (int64_t k = 0; k < w; ++k) mean[k] /= double(n);
    for (int64_t r = 0; r < n; ++r) {
      const T* xr = x + r * d + c0;
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) {
        const double dv = double(xr[k]) - mean[k];
        var[k] += dv * dv;
      }
    }
    T mu[kColBlock], rs[kColBlock];
    for (int64_t k = 0; k < w; ++k) {
      mu[k] = static_cast<T>(mean[k]);
      rs[k] = static_cast<T>(xcorr_rstd(var[k], n, eps));
      rstd[c0 + k] = rs[k];
    }
    for (int64_t r = 0; r < n; ++r) {
      const T* xr = x + r * d + c0;
      T* o = zh + r * d + c0;
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) o[k] = (xr[k] - mu[k]) * rs[k];
    }
  }
}

// g (n, d) <- rstd * (g - mean_n(g) - zh * mean_n(g * zh)) per column, in place.
template <class T>
void standardize_backward(int64_t n, int64_t d, const T* zh, const T* rstd, T* g) {
  const int64_t blocks = (d + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if (n * d > (1 << 15))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kColBlock, w = std::min(kColBlock, d - c0);
    double sg[kColBlock] = {}, sgz[kColBlock] = {};
    for (int64_t r = 0; r < n; ++r) {
      const T* gr = g + r * d + c0;
      const T* zr = zh + r * d + c0;
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) {
        sg[k] += double(gr[k]);
        sgz[k] += double(gr[k]) * double(zr[k]);
      }
    }
    T mg[kColBlock], mgz[kColBlock], rs[kColBlock];
    for (int64_t k = 0; k < w; ++k) {
      mg[k] = static_cast<T>(sg[k] / double(n));
      mgz[k] = static_cast<T>(sgz[k] / double(n));
      rs[k] = rstd[c0 + k];
    }
    for (int64_t r = 0; r < n; ++r) {
      T* gr = g + r * d + c0;
      const T* zr = zh + r * d + c0;
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) gr[k] = xcorr_standardize_grad(gr[k], zr[k], mg[k], mgz[k], rs[k]);
    }
  }
}

}  // namespace

template <class T>
double xcorr_ref(int64_t n, int64_t d, const T* z1, const T* z2, double lambda, double eps, T* dz1, T* dz2) {
  auto stdz = [&](const T* x, std::vector<double>& zh, std::vector<double>& rs) {
    zh.assign(n * d, 0.0);
    rs.assign(d, 0.0);
    for (int64_t k = 0; k < d; ++k) {
      double m = 0, v = 0;
      for (int64_t r = 0; r < n; ++r) m += double(x[r * d + k]);
      m /= double(n);
      for (int64_t r = 0; r < n; ++r) v += (double(x[r * d + k]) - m) * (double(x[r * d + k]) - m);
      rs[k] = 1.0 / std::sqrt(v / double(n) + eps);
      for (int64_t r = 0; r < n; ++r) zh[r * d + k] = (double(x[r * d + k]) - m) * rs[k];
    }
  };
  std::vector<double> h1, h2, r1, r2;
  stdz(z1, h1, r1);
  stdz(z2, h2, r2);
  std::vector<double> C(d * d, 0.0), dC(d * d);  // (d, d)
  double loss = 0;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (int64_t r = 0; r < n; ++r) s += h1[r * d + i] * h2[r * d + j];
      s /= double(n);
      C[i * d + j] = s;
      loss += i == j ? (1 - s) * (1 - s) : lambda * s * s;
      dC[i * d + j] = i == j ? 2 * (s - 1) : 2 * lambda * s;
    }
  if (dz1 && dz2) {
    auto back = [&](const std::vector<double>& zh, const std::vector<double>& other, const std::vector<double>& rs,
                    bool first, T* out) {
      std::vector<double> g(n * d, 0.0);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t k = 0; k < d; ++k) {
          double s = 0;
          for (int64_t m = 0; m < d; ++m) s += other[r * d + m] * (first ? dC[k * d + m] : dC[m * d + k]);
          g[r * d + k] = s / double(n);
        }
      for (int64_t k = 0; k < d; ++k) {
        double mg = 0, mgz = 0;
        for (int64_t r = 0; r < n; ++r) {
          mg += g[r * d + k];
          mgz += g[r * d + k] * zh[r * d + k];
        }
        mg /= double(n);
        mgz /= double(n);
        for (int64_t r = 0; r < n; ++r)
          out[r * d + k] = static_cast<T>(rs[k] * (g[r * d + k] - mg - zh[r * d + k] * mgz));
      }
    };
    back(h1, h2, r1, true, dz1);
    back(h2, h1, r2, false, dz2);
  }
  return loss;
}

template <class T>
double xcorr_forward(int64_t n, int64_t d, const T* z1, const T* z2, double lambda, double eps, T* zh1, T* zh2,
                     T* rstd1, T* rstd2, T* c) {
  standardize(n, d, z1, eps, zh1, rstd1);
  standardize(n, d, z2, eps, zh2, rstd2);
  gemm<T>(true, false, d, d, n, static_cast<T>(1.0 / double(n)), zh1, d, zh2, d, T(0), c, d);
  std::vector<double> rows(d);  // (d) per-row partial losses, summed in order below
#pragma omp parallel for schedule(static) if (d * d > (1 << 15))
  for (int64_t i = 0; i < d; ++i) {
    const T* ci = c + i * d;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += ci[j] * ci[j];
    const double diag = double(ci[i]);
    rows[i] = xcorr_row_loss(double(s), diag, lambda);
  }
  double loss = 0;
  for (int64_t i = 0; i < d; ++i) loss += rows[i];
  return loss;
}

template <class T>
void xcorr_backward(int64_t n, int64_t d, T grad, double lambda, const T* zh1, const T* zh2, const T* rstd1,
                    const T* rstd2, const T* c, T* dz1, T* dz2) {
  std::vector<T> dC(static_cast<size_t>(d * d));  // (d, d)
  const T off = static_cast<T>(2.0 * lambda) * grad, on = T(2) * grad;
#pragma omp parallel for schedule(static) if (d * d > (1 << 15))
  for (int64_t i = 0; i < d; ++i) {
    const T* ci = c + i * d;
    T* gi = dC.data() + i * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) gi[j] = xcorr_dc(ci[j], false, on, off);
    gi[i] = xcorr_dc(ci[i], true, on, off);
  }
  const T inv_n = static_cast<T>(1.0 / double(n));
  gemm<T>(false, true, n, d, d, inv_n, zh2, d, dC.data(), d, T(0), dz1, d);   // dzh1 = zh2 dC^T / N
  gemm<T>(false, false, n, d, d, inv_n, zh1, d, dC.data(), d, T(0), dz2, d);  // dzh2 = zh1 dC / N
  standardize_backward(n, d, zh1, rstd1, dz1);
  standardize_backward(n, d, zh2, rstd2, dz2);
}

#define SIAM_XCORR_INSTANTIATE(T)                                                                            \
  template double xcorr_ref<T>(int64_t, int64_t, const T*, const T*, double, double, T*, T*);               \
  template double xcorr_forward<T>(int64_t, int64_t, const T*, const T*, double, double, T*, T*, T*, T*, T*); \
  template void xcorr_backward<T>(int64_t, int64_t, T, double, const T*, const T*, const T*, const T*, const T*, \
                                  T*, T*);
SIAM_XCORR_INSTANTIATE(float)
SIAM_XCORR_INSTANTIATE(double)
#undef SIAM_XCORR_INSTANTIATE

}  // namespace siam::kernels::cpu

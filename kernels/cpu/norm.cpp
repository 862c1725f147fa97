#include "kernels/cpu/norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace siam::kernels::cpu {

namespace {
constexpr int64_t kParallelMinElems = 16384;

template <class T> inline double row_sum(const T* p, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return static_cast<double>(s);
}
template <class T> inline double row_sqdev(const T* p, int64_t n, T m) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += (p[i] - m) * (p[i] - m);
  return static_cast<double>(s);
}
}  // namespace

// ============================================================================================ batch norm, ref

template <class T>
void batch_norm_train_forward_ref(int64_t N, int64_t C, int64_t L, const T* x, const T* w, const T* b, double eps, T* y,
                                  T* mean, T* var, T* invstd) {
  const double M = static_cast<double>(N * L);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) s += x[(n * C + c) * L + l];
    const double m = s / M;
    double v = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) v += (x[(n * C + c) * L + l] - m) * (x[(n * C + c) * L + l] - m);
    v /= M;
    const double is = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<T>(m), var[c] = static_cast<T>(v), invstd[c] = static_cast<T>(is);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = (n * C + c) * L + l;
        y[i] = static_cast<T>((x[i] - m) * is * (w ? w[c] : 1.0) + (b ? b[c] : 0.0));
      }
  }
}

template <class T>
void batch_norm_backward_ref(int64_t N, int64_t C, int64_t L, const T* x, const T* gy, const T* mean, const T* invstd,
                             const T* w, bool train, T* gx, T* gw, T* gb) {
  const double M = static_cast<double>(N * L);
  for (int64_t c = 0; c < C; ++c) {
    double sg = 0, sgx = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = (n * C + c) * L + l;
        sg += gy[i];
        sgx += gy[i] * (x[i] - mean[c]) * invstd[c];
      }
    if (gb) gb[c] = static_cast<T>(sg);
    if (gw) gw[c] = static_cast<T>(sgx);
    if (!gx) continue;
    const double wc = w ? w[c] : 1.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = (n * C + c) * L + l;
        const double xhat = (x[i] - mean[c]) * static_cast<double>(invstd[c]);
        gx[i] = train ? static_cast<T>(wc * invstd[c] / M * (M * gy[i] - sg - xhat * sgx))
                      : static_cast<T>(gy[i] * wc * invstd[c]);
      }
  }
}

// ============================================================================================ batch norm, fast

template <class T>
void batch_norm_apply(int64_t N, int64_t C, int64_t L, const T* x, const T* mean, const T* invstd, const T* w,
                      const T* b, T* y) {
#pragma omp parallel for collapse(2) schedule(static) if (N * C * L >= kParallelMinElems)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const T sc = invstd[c] * (w ? w[c] : T(1));
      const T sh = (b ? b[c] : T(0)) - mean[c] * sc;
      const T* xp = x + (n * C + c) * L;
      T* yp = y + (n * C + c) * L;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) yp[l] = xp[l] * sc + sh;
    }
}

template <class T>
void batch_norm_train_forward(int64_t N, int64_t C, int64_t L, const T* x, const T* w, const T* b, double eps, T* y,
                              T* mean, T* var, T* invstd) {
  const double M = static_cast<double>(N * L);
  const bool par = N * C * L >= kParallelMinElems;
  if (L == 1) {
    // (N, C): rows are samples; accumulate columns per thread, then combine.
    const int nt = par ? omp_get_max_threads() : 1;
    std::vector<double> acc(static_cast<size_t>(nt) * C);
    std::vector<double> m(C), v(C);
    for (int pass = 0; pass < 2; ++pass) {
      std::fill(acc.begin(), acc.end(), 0.0);
#pragma omp parallel num_threads(nt)
      {
        double* a = acc.data() + static_cast<size_t>(omp_get_thread_num()) * C;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; ++n) {
          const T* xp = x + n * C;
          if (pass == 0)
            for (int64_t c = 0; c < C; ++c) a[c] += xp[c];
          else
            for (int64_t c = 0; c < C; ++c) a[c] += (xp[c] - m[c]) * (xp[c] - m[c]);
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        double s = 0;
        for (int t = 0; t < nt; ++t) s += acc[static_cast<size_t>(t) * C + c];
        (pass == 0 ? m : v)[c] = s / M;
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = static_cast<T>(m[c]), var[c] = static_cast<T>(v[c]);
      invstd[c] = static_cast<T>(1.0 / std::sqrt(v[c] + eps));
    }
    batch_norm_apply(N, C, L, x, mean, invstd, w, b, y);
    return;
  }
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) s += row_sum(x + (n * C + c) * L, L);
    const double m = s / M;
    double v = 0;
    for (int64_t n = 0; n < N; ++n) v += row_sqdev(x + (n * C + c) * L, L, static_cast<T>(m));
    v /= M;
    const double is = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<T>(m), var[c] = static_cast<T>(v), invstd[c] = static_cast<T>(is);
    const T sc = static_cast<T>(is) * (w ? w[c] : T(1));
    const T sh = (b ? b[c] : T(0)) - static_cast<T>(m) * sc;
    for (int64_t n = 0; n < N; ++n) {
      const T* xp = x + (n * C + c) * L;
      T* yp = y + (n * C + c) * L;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) yp[l] = xp[l] * sc + sh;
    }
  }
}

template <class T>
void batch_norm_backward(int64_t N, int64_t C, int64_t L, const T* x, const T* gy, const T* mean, const T* invstd,
                         const T* w, bool train, T* gx, T* gw, T* gb) {
  const double M = static_cast<double>(N * L);
  const bool par = N * C * L >= kParallelMinElems;
  // gx = a[c] * gy + k[c] * x + d[c]   (train: a = w*invstd, k = -a*invstd*sgx/M, d = -a*sg/M - k*mean)
  auto coefs = [&](int64_t c, double sg, double sgx, T& a, T& k, T& d) {
    const double wc = w ? static_cast<double>(w[c]) : 1.0, is = invstd[c];
    const double aa = wc * is;
    double kk = 0, dd = 0;
    if (train) {
      kk = -aa * is * sgx / M;
      dd = -aa * sg / M - kk * static_cast<double>(mean[c]);
    }
    a = static_cast<T>(aa), k = static_cast<T>(kk), d = static_cast<T>(dd);
  };
  const bool need_sums = gw || gb || train;
  if (L == 1) {
    const int nt = par ? omp_get_max_threads() : 1;
    std::vector<double> sg(C, 0.0), sgx(C, 0.0);
    if (need_sums) {
      std::vector<double> acc(static_cast<size_t>(nt) * 2 * C, 0.0);
#pragma omp parallel num_threads(nt)
      {
        double* a = acc.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * C;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = 0; c < C; ++c) {
            const double g = gy[n * C + c];
            a[c] += g;
            a[C + c] += g * (x[n * C + c] - mean[c]) * invstd[c];
          }
      }
      for (int t = 0; t < nt; ++t)
        for (int64_t c = 0; c < C; ++c) {
          sg[c] += acc[static_cast<size_t>(t) * 2 * C + c];
          sgx[c] += acc[static_cast<size_t>(t) * 2 * C + C + c];
        }
    }
    for (int64_t c = 0; c < C; ++c) {
      if (gb) gb[c] = static_cast<T>(sg[c]);
      if (gw) gw[c] = static_cast<T>(sgx[c]);
    }
    if (!gx) return;
    std::vector<T> A(C), K(C), D(C);
    for (int64_t c = 0; c < C; ++c) coefs(c, sg[c], sgx[c], A[c], K[c], D[c]);
#pragma omp parallel for schedule(static) if (par)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) gx[n * C + c] = A[c] * gy[n * C + c] + K[c] * x[n * C + c] + D[c];
    return;
  }
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < C; ++c) {
    double sg = 0, sgx = 0;
    if (need_sums) {
      const T m = mean[c];
      for (int64_t n = 0; n < N; ++n) {
        const T* gp = gy + (n * C + c) * L;
        const T* xp = x + (n * C + c) * L;
        T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t l = 0; l < L; ++l) {
          s1 += gp[l];
          s2 += gp[l] * (xp[l] - m);
        }
        sg += s1;
        sgx += s2;
      }
      sgx *= static_cast<double>(invstd[c]);
    }
    if (gb) gb[c] = static_cast<T>(sg);
    if (gw) gw[c] = static_cast<T>(sgx);
    if (!gx) continue;
    T a, k, d;
    coefs(c, sg, sgx, a, k, d);
    for (int64_t n = 0; n < N; ++n) {
      const T* gp = gy + (n * C + c) * L;
      const T* xp = x + (n * C + c) * L;
      T* op = gx + (n * C + c) * L;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) op[l] = a * gp[l] + k * xp[l] + d;
    }
  }
}

// ============================================================================================ layer norm

template <class T>
void layer_norm_forward_ref(int64_t R, int64_t D, const T* x, const T* w, const T* b, double eps, T* y, T* mean,
                            T* invstd) {
  for (int64_t r = 0; r < R; ++r) {
    const T* xp = x + r * D;
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += xp[d];
    const double m = s / D;
    double v = 0;
    for (int64_t d = 0; d < D; ++d) v += (xp[d] - m) * (xp[d] - m);
    const double is = 1.0 / std::sqrt(v / D + eps);
    mean[r] = static_cast<T>(m), invstd[r] = static_cast<T>(is);
    for (int64_t d = 0; d < D; ++d)
      y[r * D + d] = static_cast<T>((xp[d] - m) * is * (w ? w[d] : 1.0) + (b ? b[d] : 0.0));
  }
}

template <class T>
void layer_norm_forward(int64_t R, int64_t D, const T* x, const T* w, const T* b, double eps, T* y, T* mean,
                        T* invstd) {
#pragma omp parallel for schedule(static) if (R * D >= kParallelMinElems)
  for (int64_t r = 0; r < R; ++r) {
    const T* xp = x + r * D;
    T* yp = y + r * D;
    const double m = row_sum(xp, D) / static_cast<double>(D);
    const double v = row_sqdev(xp, D, static_cast<T>(m)) / static_cast<double>(D);
    const T is = static_cast<T>(1.0 / std::sqrt(v + eps)), mt = static_cast<T>(m);
    mean[r] = mt, invstd[r] = is;
    if (w && b) {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) yp[d] = (xp[d] - mt) * is * w[d] + b[d];
    } else {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) yp[d] = (xp[d] - mt) * is * (w ? w[d] : T(1)) + (b ? b[d] : T(0));
    }
  }
}

template <class T>
void layer_norm_backward_ref(int64_t R, int64_t D, const T* x, const T* gy, const T* mean, const T* invstd, const T* w,
                             T* gx, T* gw, T* gb) {
  if (gw) std::fill(gw, gw + D, T(0));
  if (gb) std::fill(gb, gb + D, T(0));
  for (int64_t r = 0; r < R; ++r) {
    double s1 = 0, s2 = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double xhat = (x[r * D + d] - mean[r]) * static_cast<double>(invstd[r]);
      const double gw_ = gy[r * D + d] * (w ? w[d] : 1.0);
      s1 += gw_;
      s2 += gw_ * xhat;
      if (gw) gw[d] += static_cast<T>(gy[r * D + d] * xhat);
      if (gb) gb[d] += gy[r * D + d];
    }
    if (!gx) continue;
    for (int64_t d = 0; d < D; ++d) {
      const double xhat = (x[r * D + d] - mean[r]) * static_cast<double>(invstd[r]);
      const double gw_ = gy[r * D + d] * (w ? w[d] : 1.0);
      gx[r * D + d] = static_cast<T>(invstd[r] * (gw_ - s1 / D - xhat * s2 / D));
    }
  }
}

template <class T>
void layer_norm_backward(int64_t R, int64_t D, const T* x, const T* gy, const T* mean, const T* invstd, const T* w,
                         T* gx, T* gw, T* gb) {
  const bool par = R * D >= kParallelMinElems;
  const int nt = par ? omp_get_max_threads() : 1;
  const bool acc_params = gw || gb;
  std::vector<double> acc(acc_params ? static_cast<size_t>(nt) * 2 * D : 0, 0.0);  // per thread: gw (D), gb (D)
#pragma omp parallel num_threads(nt)
  {
    double* a = acc_params ? acc.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * D : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      const T* xp = x + r * D;
      const T* gp = gy + r * D;
      const T m = mean[r], is = invstd[r];
      if (a)
        for (int64_t d = 0; d < D; ++d) {
          a[d] += static_cast<double>(gp[d] * (xp[d] - m) * is);
          a[D + d] += static_cast<double>(gp[d]);
        }
      if (!gx) continue;
      T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t d = 0; d < D; ++d) {
        const T g = gp[d] * (w ? w[d] : T(1));
        s1 += g;
        s2 += g * (xp[d] - m) * is;
      }
      const T m1 = s1 / static_cast<T>(D), m2 = s2 / static_cast<T>(D);
      T* op = gx + r * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) op[d] = is * (gp[d] * (w ? w[d] : T(1)) - m1 - (xp[d] - m) * is * m2);
    }
  }
  if (!acc_params) return;
  for (int64_t d = 0; d < D; ++d) {
    double sw = 0, sb = 0;
    for (int t = 0; t < nt; ++t) {
      sw += acc[static_cast<size_t>(t) * 2 * D + d];
      sb += acc[static_cast<size_t>(t) * 2 * D + D + d];
    }
    if (gw) gw[d] = static_cast<T>(sw);
    if (gb) gb[d] = static_cast<T>(sb);
  }
}

#define SIAM_NORM_INST(T)                                                                                              \
  template void batch_norm_train_forward_ref<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, double, T*,   \
                                                T*, T*, T*);                                                           \
  template void batch_norm_train_forward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, double, T*, T*,   \
                                            T*, T*);                                                                   \
  template void batch_norm_apply<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const T*, const T*, T*);  \
  template void batch_norm_backward_ref<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const T*,          \
                                           const T*, bool, T*, T*, T*);                                                \
  template void batch_norm_backward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const T*, const T*,    \
                                       bool, T*, T*, T*);                                                              \
  template void layer_norm_forward_ref<T>(int64_t, int64_t, const T*, const T*, const T*, double, T*, T*, T*);         \
  template void layer_norm_forward<T>(int64_t, int64_t, const T*, const T*, const T*, double, T*, T*, T*);             \
  template void layer_norm_backward_ref<T>(int64_t, int64_t, const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                           T*);                                                                        \
  template void layer_norm_backward<T>(int64_t, int64_t, const T*, const T*, const T*, const T*, const T*, T*, T*, T*);
SIAM_NORM_INST(float)
SIAM_NORM_INST(double)
#undef SIAM_NORM_INST

}  // namespace siam::kernels::cpu

// Tiled InfoNCE / NT-Xent and its reference (see infonce.h for the math and the layout).
#include "kernels/cpu/infonce.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/common/fastmath.h"
#include "kernels/cpu/gemm.h"

namespace siam::kernels::cpu {

namespace {

// f32 e^x without a library call (kernels/common/fastmath.h, within about 1 ulp), so the `omp simd` loops
// over logits vectorize; f64 keeps std::exp for the gradient checks.
inline float exp_t(float x) { return fastmath::exp_f32(x); }
inline double exp_t(double x) { return std::exp(x); }

template <class T>
inline T dot(const T* a, const T* b, int64_t d) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < d; ++k) s += a[k] * b[k];
  return s;
}

int64_t num_tiles(int64_t n, int64_t t) { return (n + t - 1) / t; }

}  // namespace

int64_t infonce_workspace_elems(const InfonceArgs& a, int threads) {
  const int64_t cols = a.self ? a.rows : a.cols;
  const int64_t tc = std::max<int64_t>(1, std::min(kInfonceTileCols, cols));
  return static_cast<int64_t>(threads) * std::min(kInfonceTileRows, std::max<int64_t>(a.rows, 1)) * tc + a.rows;
}

template <class T>
void infonce_normalize_rows(int64_t n, int64_t d, const T* x, T* z, T* rnorm, double eps) {
#pragma omp parallel for if (n * d > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * d;
    const T nrm = std::sqrt(dot(xi, xi, d));
    const T r = T(1) / std::max(nrm, static_cast<T>(eps));
    T* zi = z + i * d;
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) zi[k] = xi[k] * r;
    if (rnorm) rnorm[i] = r;
  }
}

template <class T>
void infonce_normalize_backward(int64_t n, int64_t d, const T* z, const T* rnorm, const T* dz, T* dx) {
#pragma omp parallel for if (n * d > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const T* zi = z + i * d;
    const T* gi = dz + i * d;
    const T p = dot(zi, gi, d);
    const T r = rnorm[i];
    T* o = dx + i * d;
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) o[k] = (gi[k] - zi[k] * p) * r;
  }
}

template <class T>
double infonce_forward(const InfonceArgs& a, const T* z, const T* keys, const T* queue, T* lse) {
  const int64_t M = a.rows, D = a.dim, Nc = a.self ? a.rows : a.cols;
  const T* C = a.self ? z : queue;  // (Nc, D)
  const T inv_t = static_cast<T>(1.0 / a.temperature);
  const T ninf = -std::numeric_limits<T>::infinity();
  const int64_t TR = kInfonceTileRows, TCe = std::max<int64_t>(1, std::min(kInfonceTileCols, Nc));
  const int64_t tiles = num_tiles(M, TR);
  std::vector<double> loss_rows(M);  // (M)
#pragma omp parallel if (tiles > 1)
  {
    std::vector<T> S(static_cast<size_t>(std::min(TR, M) * TCe));  // (TR, TC) logits tile
    T m[kInfonceTileRows], s[kInfonceTileRows], pos[kInfonceTileRows];
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < tiles; ++it) {
      const int64_t i0 = it * TR, tr = std::min(TR, M - i0);
      for (int64_t r = 0; r < tr; ++r) {
        const int64_t i = i0 + r;
        if (a.self) {
          pos[r] = dot(z + i * D, z + ((i + a.pos_offset) % M) * D, D) * inv_t;
          m[r] = ninf;
          s[r] = 0;
        } else {
          pos[r] = dot(z + i * D, keys + i * D, D) * inv_t;  // the positive is in the denominator too
          m[r] = pos[r];
          s[r] = 1;
        }
      }
      for (int64_t j0 = 0; j0 < Nc; j0 += TCe) {
        const int64_t tc = std::min(TCe, Nc - j0);
        gemm<T>(false, true, tr, tc, D, inv_t, z + i0 * D, D, C + j0 * D, D, T(0), S.data(), tc);
        for (int64_t r = 0; r < tr; ++r) {
          T* srow = S.data() + r * tc;
          const int64_t i = i0 + r;
          if (a.self && i >= j0 && i < j0 + tc) srow[i - j0] = ninf;  // self-similarity masked
          T mt = m[r];
#pragma omp simd reduction(max : mt)
          for (int64_t c = 0; c < tc; ++c) mt = std::max(mt, srow[c]);
          if (mt == ninf) continue;
          T acc = 0;
#pragma omp simd reduction(+ : acc)
          for (int64_t c = 0; c < tc; ++c) acc += exp_t(srow[c] - mt);
          s[r] = s[r] * exp_t(m[r] - mt) + acc;
          m[r] = mt;
        }
      }
      for (int64_t r = 0; r < tr; ++r) {
        const T l = m[r] + std::log(s[r]);
        lse[i0 + r] = l;
        loss_rows[i0 + r] = static_cast<double>(l) - static_cast<double>(pos[r]);
      }
    }
  }
  double total = 0;
  for (int64_t i = 0; i < M; ++i) total += loss_rows[i];
  return M > 0 ? total / static_cast<double>(M) : 0.0;
}

template <class T>
void infonce_backward(const InfonceArgs& a, T grad, const T* z, const T* keys, const T* queue, const T* lse, T* dz) {
  const int64_t M = a.rows, D = a.dim, Nc = a.self ? a.rows : a.cols;
  const T* C = a.self ? z : queue;  // (Nc, D)
  const T inv_t = static_cast<T>(1.0 / a.temperature);
  const T ninf = -std::numeric_limits<T>::infinity();
  const T c = grad / static_cast<T>(M), ct = c * inv_t;
  const int64_t TR = kInfonceTileRows, TCe = std::max<int64_t>(1, std::min(kInfonceTileCols, Nc));
  const int64_t tiles = num_tiles(M, TR);
#pragma omp parallel if (tiles > 1)
  {
    std::vector<T> G(static_cast<size_t>(std::min(TR, M) * TCe));  // (TR, TC): S tile, then dL/dS tile
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < tiles; ++it) {
      const int64_t i0 = it * TR, tr = std::min(TR, M - i0);
      T* dzI = dz + i0 * D;  // (tr, D)
      std::fill(dzI, dzI + tr * D, T(0));
      for (int64_t j0 = 0; j0 < Nc; j0 += TCe) {
        const int64_t tc = std::min(TCe, Nc - j0);
        gemm<T>(false, true, tr, tc, D, inv_t, z + i0 * D, D, C + j0 * D, D, T(0), G.data(), tc);
        for (int64_t r = 0; r < tr; ++r) {
          T* grow = G.data() + r * tc;
          const int64_t i = i0 + r;
          const T li = lse[i];
          if (a.self) {
            const T* lj = lse + j0;
            // G_ij + G_ji: row i's softmax and column j's (S symmetric), positives added below
#pragma omp simd
            for (int64_t k = 0; k < tc; ++k) grow[k] = c * (exp_t(grow[k] - li) + exp_t(grow[k] - lj[k]));
            if (i >= j0 && i < j0 + tc) grow[i - j0] = 0;
          } else {
#pragma omp simd
            for (int64_t k = 0; k < tc; ++k) grow[k] = c * exp_t(grow[k] - li);
          }
        }
        // dz_I += (1/t) G_IJ C_J
        gemm<T>(false, false, tr, D, tc, inv_t, G.data(), tc, C + j0 * D, D, T(1), dzI, D);
      }
      for (int64_t r = 0; r < tr; ++r) {
        const int64_t i = i0 + r;
        T* o = dz + i * D;
        if (a.self) {
          const T* zp = z + ((i + a.pos_offset) % M) * D;
          const T* zq = z + ((i - a.pos_offset % M + M) % M) * D;
#pragma omp simd
          for (int64_t k = 0; k < D; ++k) o[k] -= ct * (zp[k] + zq[k]);
        } else {
          const T* ki = keys + i * D;
          const T p = dot(z + i * D, ki, D) * inv_t;
          const T w = ct * (exp_t(p - lse[i]) - T(1));
#pragma omp simd
          for (int64_t k = 0; k < D; ++k) o[k] += w * ki[k];
        }
      }
    }
  }
  (void)ninf;
}

template <class T>
double infonce_ref(const InfonceArgs& a, bool normalize, const T* x, const T* keys, const T* queue, T* dx) {
  const int64_t M = a.rows, D = a.dim;
  const double inv_t = 1.0 / a.temperature;
  auto load = [&](const T* src, int64_t n, std::vector<double>& z, std::vector<double>& rn) {
    z.assign(n * D, 0.0);
    rn.assign(n, 1.0);
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) s += double(src[i * D + k]) * double(src[i * D + k]);
      const double r = normalize ? 1.0 / std::max(std::sqrt(s), 1e-12) : 1.0;
      rn[i] = r;
      for (int64_t k = 0; k < D; ++k) z[i * D + k] = double(src[i * D + k]) * r;
    }
  };
  std::vector<double> z, rz, kz, rk, qz, rq;
  load(x, M, z, rz);
  // Columns of the logits: self form: the rows; cross form: [own key, queue...].
  const int64_t ncol = a.self ? M : 1 + a.cols;
  if (!a.self) {
    load(keys, M, kz, rk);
    load(queue, a.cols, qz, rq);
  }
  auto col = [&](int64_t i, int64_t j) -> const double* {
    if (a.self) return z.data() + j * D;
    return j == 0 ? kz.data() + i * D : qz.data() + (j - 1) * D;
  };
  std::vector<double> L(M * ncol);  // (M, ncol) logits, materialized
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < ncol; ++j) {
      double s = 0;
      const double* cj = col(i, j);
      for (int64_t k = 0; k < D; ++k) s += z[i * D + k] * cj[k];
      L[i * ncol + j] = (a.self && i == j) ? -std::numeric_limits<double>::infinity() : s * inv_t;
    }
  double total = 0;
  std::vector<double> G(M * ncol);  // (M, ncol) dL/dlogits
  for (int64_t i = 0; i < M; ++i) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < ncol; ++j) mx = std::max(mx, L[i * ncol + j]);
    double s = 0;
    for (int64_t j = 0; j < ncol; ++j) s += std::exp(L[i * ncol + j] - mx);
    const double lse = mx + std::log(s);
    const int64_t p = a.self ? (i + a.pos_offset) % M : 0;
    total += lse - L[i * ncol + p];
    for (int64_t j = 0; j < ncol; ++j)
      G[i * ncol + j] = (std::exp(L[i * ncol + j] - lse) - (j == p ? 1.0 : 0.0)) / double(M);
  }
  if (dx) {
    std::vector<double> dz(M * D, 0.0);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < ncol; ++j) {
        const double g = G[i * ncol + j] * inv_t;
        const double* cj = col(i, j);
        for (int64_t k = 0; k < D; ++k) dz[i * D + k] += g * cj[k];
        if (a.self)
          for (int64_t k = 0; k < D; ++k) dz[j * D + k] += g * z[i * D + k];
      }
    for (int64_t i = 0; i < M; ++i) {
      double p = 0;
      if (normalize)
        for (int64_t k = 0; k < D; ++k) p += z[i * D + k] * dz[i * D + k];
      for (int64_t k = 0; k < D; ++k) dx[i * D + k] = static_cast<T>((dz[i * D + k] - z[i * D + k] * p) * rz[i]);
    }
  }
  return M > 0 ? total / double(M) : 0.0;
}

#define SIAM_INFONCE_INSTANTIATE(T)                                                                          \
  template void infonce_normalize_rows<T>(int64_t, int64_t, const T*, T*, T*, double);                      \
  template void infonce_normalize_backward<T>(int64_t, int64_t, const T*, const T*, const T*, T*);          \
  template double infonce_forward<T>(const InfonceArgs&, const T*, const T*, const T*, T*);                 \
  template void infonce_backward<T>(const InfonceArgs&, T, const T*, const T*, const T*, const T*, T*);     \
  template double infonce_ref<T>(const InfonceArgs&, bool, const T*, const T*, const T*, T*);
SIAM_INFONCE_INSTANTIATE(float)
SIAM_INFONCE_INSTANTIATE(double)
#undef SIAM_INFONCE_INSTANTIATE

}  // namespace siam::kernels::cpu

// Tiled InfoNCE / NT-Xent and its reference (see infonce.h for the math and the layout).
#include "kernels/cpu/infonce.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
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

int64_t infonce_column_splits(int64_t rows, int64_t cols) {
  const int64_t tiles = num_tiles(rows, kInfonceTileRows);
  if (tiles >= kInfonceMinWork) return 1;
  const int64_t by_cols = std::max<int64_t>(1, cols / kInfonceSplitMinCols);
  return std::max<int64_t>(1, std::min(by_cols, (kInfonceMinWork + tiles - 1) / std::max<int64_t>(tiles, 1)));
}

int64_t infonce_workspace_elems(const InfonceArgs& a, int threads) {
  const int64_t cols = a.self ? a.rows : a.cols;
  const int64_t tc = std::max<int64_t>(1, std::min(kInfonceTileCols, cols));
  const int64_t splits = infonce_column_splits(a.rows, cols);
  // + the partial (max, sum) per split and row and the rows' positives (forward), the partial gradients per split
  // (backward)
  const int64_t split_elems = splits > 1 ? splits * a.rows * (2 + a.dim) + a.rows : 0;
  return static_cast<int64_t>(threads) * std::min(kInfonceTileRows, std::max<int64_t>(a.rows, 1)) * tc + a.rows +
         split_elems;
}

namespace {

// The column range [begin, end) of split sp of `splits` over cols columns, in whole column tiles of tc.
std::pair<int64_t, int64_t> split_range(int64_t sp, int64_t splits, int64_t cols, int64_t tc) {
  const int64_t col_tiles = num_tiles(cols, tc), per = (col_tiles + splits - 1) / splits;
  const int64_t begin = std::min(cols, sp * per * tc);
  return {begin, std::min(cols, begin + per * tc)};
}

}  // namespace

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
  const int64_t tiles = num_tiles(M, TR), splits = infonce_column_splits(M, Nc);
  std::vector<double> loss_rows(M);  // (M)
  std::vector<T> part_m, part_s, pos_rows;  // (splits, M) partial states, (M) positives: only when split
  if (splits > 1) {
    part_m.resize(static_cast<size_t>(splits * M));
    part_s.resize(static_cast<size_t>(splits * M));
    pos_rows.resize(static_cast<size_t>(M));
  }
#pragma omp parallel if (tiles * splits > 1)
  {
    std::vector<T> S(static_cast<size_t>(std::min(TR, M) * TCe));  // (TR, TC) logits tile
    T m[kInfonceTileRows], s[kInfonceTileRows], pos[kInfonceTileRows];
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < tiles * splits; ++w) {
      const int64_t it = w / splits, sp = w % splits;
      const auto [jb, je] = split_range(sp, splits, Nc, TCe);
      const int64_t i0 = it * TR, tr = std::min(TR, M - i0);
      for (int64_t r = 0; r < tr; ++r) {
        const int64_t i = i0 + r;
        if (a.self) {
          pos[r] = dot(z + i * D, z + ((i + a.pos_offset) % M) * D, D) * inv_t;
          m[r] = ninf;
          s[r] = 0;
        } else {
          pos[r] = dot(z + i * D, keys + i * D, D) * inv_t;  // the positive is in the denominator too (once)
          m[r] = sp == 0 ? pos[r] : ninf;
          s[r] = sp == 0 ? T(1) : T(0);
        }
      }
      for (int64_t j0 = jb; j0 < je; j0 += TCe) {
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
        if (splits > 1) {  // merged below, in split order
          part_m[static_cast<size_t>(sp * M + i0 + r)] = m[r];
          part_s[static_cast<size_t>(sp * M + i0 + r)] = s[r];
          if (sp == 0) pos_rows[static_cast<size_t>(i0 + r)] = pos[r];
          continue;
        }
        const T l = m[r] + std::log(s[r]);
        lse[i0 + r] = l;
        loss_rows[i0 + r] = static_cast<double>(l) - static_cast<double>(pos[r]);
      }
    }
  }
  if (splits > 1) {  // the online states of a row's column ranges merged in a fixed order (any thread count)
    for (int64_t i = 0; i < M; ++i) {
      T mt = ninf;
      for (int64_t sp = 0; sp < splits; ++sp) mt = std::max(mt, part_m[static_cast<size_t>(sp * M + i)]);
      T st = 0;
      if (mt != ninf)
        for (int64_t sp = 0; sp < splits; ++sp)
          st += part_s[static_cast<size_t>(sp * M + i)] * exp_t(part_m[static_cast<size_t>(sp * M + i)] - mt);
      const T l = mt + std::log(st);
      lse[i] = l;
      loss_rows[i] = static_cast<double>(l) - static_cast<double>(pos_rows[static_cast<size_t>(i)]);
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
  const int64_t tiles = num_tiles(M, TR), splits = infonce_column_splits(M, Nc);
  std::vector<T> part;  // (splits, M, D) the column ranges' partial gradients: only when split
  if (splits > 1) part.resize(static_cast<size_t>(splits * M * D));
  // The positive terms of rows [i0, i0 + tr), added to dz once its tile sum is complete.
  auto positives = [&](int64_t i0, int64_t tr) {
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
  };
#pragma omp parallel if (tiles * splits > 1)
  {
    std::vector<T> G(static_cast<size_t>(std::min(TR, M) * TCe));  // (TR, TC): S tile, then dL/dS tile
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < tiles * splits; ++w) {
      const int64_t it = w / splits, sp = w % splits;
      const auto [jb, je] = split_range(sp, splits, Nc, TCe);
      const int64_t i0 = it * TR, tr = std::min(TR, M - i0);
      T* dzI = splits > 1 ? part.data() + (sp * M + i0) * D : dz + i0 * D;  // (tr, D)
      std::fill(dzI, dzI + tr * D, T(0));
      for (int64_t j0 = jb; j0 < je; j0 += TCe) {
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
      if (splits == 1) positives(i0, tr);
    }
  }
  if (splits > 1) {  // the column ranges' partial gradients summed in split order (any thread count)
#pragma omp parallel for if (M * D > (1 << 15))
    for (int64_t i = 0; i < M; ++i) {
      T* o = dz + i * D;
      std::copy(part.data() + i * D, part.data() + (i + 1) * D, o);
      for (int64_t sp = 1; sp < splits; ++sp) {
        const T* q = part.data() + (sp * M + i) * D;
#pragma omp simd
        for (int64_t k = 0; k < D; ++k) o[k] += q[k];
      }
    }
    positives(0, M);
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

// ---- the other forms (see infonce.h) ----

template <class T>
void infonce_rows_lse(int64_t rows, int64_t cols, int64_t dim, double temperature, const T* x, const T* y,
                      const int64_t* mask, T* lse) {
  const int64_t M = rows, Nc = cols, D = dim;
  const T inv_t = static_cast<T>(1.0 / temperature);
  const T ninf = -std::numeric_limits<T>::infinity();
  const int64_t TR = kInfonceTileRows, TCe = std::max<int64_t>(1, std::min(kInfonceTileCols, Nc));
  const int64_t tiles = num_tiles(M, TR);
#pragma omp parallel if (tiles > 1)
  {
    std::vector<T> S(static_cast<size_t>(std::min(TR, std::max<int64_t>(M, 1)) * TCe));  // (TR, TC) logits tile
    T m[kInfonceTileRows], s[kInfonceTileRows];
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < tiles; ++it) {
      const int64_t i0 = it * TR, tr = std::min(TR, M - i0);
      for (int64_t r = 0; r < tr; ++r) {
        m[r] = ninf;
        s[r] = 0;
      }
      for (int64_t j0 = 0; j0 < Nc; j0 += TCe) {
        const int64_t tc = std::min(TCe, Nc - j0);
        gemm<T>(false, true, tr, tc, D, inv_t, x + i0 * D, D, y + j0 * D, D, T(0), S.data(), tc);
        for (int64_t r = 0; r < tr; ++r) {
          T* srow = S.data() + r * tc;
          if (mask) {
            const int64_t mc = mask[i0 + r];
            if (mc >= j0 && mc < j0 + tc) srow[mc - j0] = ninf;
          }
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
      for (int64_t r = 0; r < tr; ++r) lse[i0 + r] = m[r] + std::log(s[r]);
    }
  }
}

template <class T>
void infonce_grad_pass(int64_t rows, int64_t cols, int64_t dim, double temperature, const T* x, const T* y,
                       const int64_t* mask, const T* a, const T* b, T scale, T* dx) {
  const int64_t M = rows, Nc = cols, D = dim;
  const T inv_t = static_cast<T>(1.0 / temperature);
  const int64_t TR = kInfonceTileRows, TCe = std::max<int64_t>(1, std::min(kInfonceTileCols, Nc));
  const int64_t tiles = num_tiles(M, TR);
#pragma omp parallel if (tiles > 1)
  {
    std::vector<T> G(static_cast<size_t>(std::min(TR, std::max<int64_t>(M, 1)) * TCe));  // (TR, TC): S, then G
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < tiles; ++it) {
      const int64_t i0 = it * TR, tr = std::min(TR, M - i0);
      T* dxI = dx + i0 * D;  // (tr, D)
      std::fill(dxI, dxI + tr * D, T(0));
      for (int64_t j0 = 0; j0 < Nc; j0 += TCe) {
        const int64_t tc = std::min(TCe, Nc - j0);
        gemm<T>(false, true, tr, tc, D, inv_t, x + i0 * D, D, y + j0 * D, D, T(0), G.data(), tc);
        for (int64_t r = 0; r < tr; ++r) {
          T* grow = G.data() + r * tc;
          const int64_t i = i0 + r;
          if (a && b) {
            const T ai = a[i];
            const T* bj = b + j0;
#pragma omp simd
            for (int64_t k = 0; k < tc; ++k) grow[k] = scale * (exp_t(grow[k] - ai) + exp_t(grow[k] - bj[k]));
          } else if (a) {
            const T ai = a[i];
#pragma omp simd
            for (int64_t k = 0; k < tc; ++k) grow[k] = scale * exp_t(grow[k] - ai);
          } else {
            const T* bj = b + j0;
#pragma omp simd
            for (int64_t k = 0; k < tc; ++k) grow[k] = scale * exp_t(grow[k] - bj[k]);
          }
          if (mask) {
            const int64_t mc = mask[i];
            if (mc >= j0 && mc < j0 + tc) grow[mc - j0] = 0;
          }
        }
        // dx_I += (1/t) G_IJ Y_J
        gemm<T>(false, false, tr, D, tc, inv_t, G.data(), tc, y + j0 * D, D, T(1), dxI, D);
      }
    }
  }
}

namespace {

// Class of each row (dense ids in order of first appearance), the class sizes and the class sums of z (f64).
struct Classes {
  std::vector<int64_t> id;     // (M)
  std::vector<int64_t> count;  // (C)
  std::vector<double> sum;     // (C, D)
};

template <class T>
Classes classes_of(int64_t M, int64_t D, const T* z, const int64_t* labels) {
  Classes c;
  c.id.resize(M);
  std::vector<std::pair<int64_t, int64_t>> order(M);  // (label, row), sorted: ids without a hash map
  for (int64_t i = 0; i < M; ++i) order[i] = {labels[i], i};
  std::sort(order.begin(), order.end());
  int64_t n = 0;
  for (int64_t k = 0; k < M; ++k) {
    if (k > 0 && order[k].first != order[k - 1].first) ++n;
    c.id[order[k].second] = n;
  }
  const int64_t C = M > 0 ? n + 1 : 0;
  c.count.assign(C, 0);
  c.sum.assign(C * D, 0.0);
  for (int64_t i = 0; i < M; ++i) {
    ++c.count[c.id[i]];
    double* s = c.sum.data() + c.id[i] * D;
    for (int64_t k = 0; k < D; ++k) s[k] += static_cast<double>(z[i * D + k]);
  }
  return c;
}

std::vector<int64_t> self_mask(int64_t M) {
  std::vector<int64_t> mask(M);
  for (int64_t i = 0; i < M; ++i) mask[i] = i;
  return mask;
}

// Gathered form: own column of local row r (2n rows) among the 2m gathered columns, and its positive.
inline int64_t own_col(int64_t r, int64_t n, int64_t m, int64_t offset) {
  return r < n ? offset + r : m + offset + r - n;
}
inline int64_t pos_col(int64_t r, int64_t n, int64_t m, int64_t offset) {
  return r < n ? m + offset + r : offset + r - n;
}

}  // namespace

template <class T>
double supcon_forward(int64_t M, int64_t D, double temperature, const T* z, const int64_t* labels, T* lse) {
  const std::vector<int64_t> mask = self_mask(M);
  infonce_rows_lse<T>(M, M, D, temperature, z, z, mask.data(), lse);
  const Classes c = classes_of(M, D, z, labels);
  double total = 0;
  int64_t valid = 0;
  for (int64_t i = 0; i < M; ++i) {
    const int64_t k = c.id[i], np = c.count[k] - 1;
    if (np == 0) continue;
    const double* zc = c.sum.data() + k * D;
    double p = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double zi = static_cast<double>(z[i * D + d]);
      p += zi * (zc[d] - zi);
    }
    total += static_cast<double>(lse[i]) - p / (temperature * static_cast<double>(np));
    ++valid;
  }
  return valid > 0 ? total / static_cast<double>(valid) : 0.0;
}

template <class T>
void supcon_backward(int64_t M, int64_t D, double temperature, T grad, const T* z, const int64_t* labels,
                     const T* lse, T* dz) {
  const Classes c = classes_of(M, D, z, labels);
  int64_t valid = 0;
  std::vector<T> lw(M);  // (M) lse, +inf on rows without a positive (their terms vanish)
  for (int64_t i = 0; i < M; ++i) {
    const bool ok = c.count[c.id[i]] > 1;
    valid += ok;
    lw[i] = ok ? lse[i] : std::numeric_limits<T>::infinity();
  }
  if (valid == 0) {
    std::fill(dz, dz + M * D, T(0));
    return;
  }
  const std::vector<int64_t> mask = self_mask(M);
  const double w = static_cast<double>(grad) / static_cast<double>(valid);
  infonce_grad_pass<T>(M, M, D, temperature, z, z, mask.data(), lw.data(), lw.data(), static_cast<T>(w), dz);
#pragma omp parallel for if (M * D > (1 << 15))
  for (int64_t i = 0; i < M; ++i) {
    const int64_t k = c.id[i], np = c.count[k] - 1;
    if (np == 0) continue;
    const double f = 2.0 * w / (temperature * static_cast<double>(np));
    const double* zc = c.sum.data() + k * D;
    T* o = dz + i * D;
    for (int64_t d = 0; d < D; ++d)
      o[d] -= static_cast<T>(f * (zc[d] - static_cast<double>(z[i * D + d])));
  }
}

template <class T>
double clip_forward(int64_t N, int64_t D, double temperature, const T* a, const T* b, T* lse_a, T* lse_b) {
  infonce_rows_lse<T>(N, N, D, temperature, a, b, nullptr, lse_a);
  infonce_rows_lse<T>(N, N, D, temperature, b, a, nullptr, lse_b);
  const T inv_t = static_cast<T>(1.0 / temperature);
  double total = 0;
  for (int64_t i = 0; i < N; ++i) {
    const double sii = static_cast<double>(dot(a + i * D, b + i * D, D) * inv_t);
    total += static_cast<double>(lse_a[i]) + static_cast<double>(lse_b[i]) - 2.0 * sii;
  }
  return N > 0 ? total / (2.0 * static_cast<double>(N)) : 0.0;
}

template <class T>
void clip_backward(int64_t N, int64_t D, double temperature, T grad, const T* a, const T* b, const T* lse_a,
                   const T* lse_b, T* da, T* db) {
  const T scale = static_cast<T>(static_cast<double>(grad) / (2.0 * static_cast<double>(N)));
  const T pos = static_cast<T>(static_cast<double>(grad) / (static_cast<double>(N) * temperature));
  if (da) infonce_grad_pass<T>(N, N, D, temperature, a, b, nullptr, lse_a, lse_b, scale, da);
  if (db) infonce_grad_pass<T>(N, N, D, temperature, b, a, nullptr, lse_b, lse_a, scale, db);
#pragma omp parallel for if (N * D > (1 << 15))
  for (int64_t i = 0; i < N; ++i) {
    if (da) {
      T* o = da + i * D;
      const T* bi = b + i * D;
#pragma omp simd
      for (int64_t k = 0; k < D; ++k) o[k] -= pos * bi[k];
    }
    if (db) {
      T* o = db + i * D;
      const T* ai = a + i * D;
#pragma omp simd
      for (int64_t k = 0; k < D; ++k) o[k] -= pos * ai[k];
    }
  }
}

template <class T>
double infonce_gathered_forward(int64_t n, int64_t m, int64_t offset, int64_t D, double temperature, const T* x,
                                const T* g, T* lse) {
  const int64_t R = 2 * n;
  std::vector<int64_t> own(R);
  for (int64_t r = 0; r < R; ++r) own[r] = own_col(r, n, m, offset);
  infonce_rows_lse<T>(R, 2 * m, D, temperature, x, g, own.data(), lse);
  const T inv_t = static_cast<T>(1.0 / temperature);
  double total = 0;
  for (int64_t r = 0; r < R; ++r)
    total += static_cast<double>(lse[r]) -
             static_cast<double>(dot(x + r * D, g + pos_col(r, n, m, offset) * D, D) * inv_t);
  return R > 0 ? total / static_cast<double>(R) : 0.0;
}

template <class T>
void infonce_gathered_backward(int64_t n, int64_t m, int64_t offset, int64_t D, double temperature, T grad,
                               const T* x, const T* g, const T* lse, T* dx, T* dg) {
  const int64_t R = 2 * n, C = 2 * m;
  const T scale = static_cast<T>(static_cast<double>(grad) / static_cast<double>(R));
  const T pos = static_cast<T>(static_cast<double>(grad) / (static_cast<double>(R) * temperature));
  std::vector<int64_t> own(R), own_t(C, -1);  // (2n) masked column per local row; (2m) its transpose
  for (int64_t r = 0; r < R; ++r) {
    own[r] = own_col(r, n, m, offset);
    own_t[own[r]] = r;
  }
  if (dx) {
    infonce_grad_pass<T>(R, C, D, temperature, x, g, own.data(), lse, nullptr, scale, dx);
    for (int64_t r = 0; r < R; ++r) {
      const T* gp = g + pos_col(r, n, m, offset) * D;
      T* o = dx + r * D;
#pragma omp simd
      for (int64_t k = 0; k < D; ++k) o[k] -= pos * gp[k];
    }
  }
  if (dg) {
    infonce_grad_pass<T>(C, R, D, temperature, g, x, own_t.data(), nullptr, lse, scale, dg);
    for (int64_t r = 0; r < R; ++r) {
      const T* xr = x + r * D;
      T* o = dg + pos_col(r, n, m, offset) * D;
#pragma omp simd
      for (int64_t k = 0; k < D; ++k) o[k] -= pos * xr[k];
    }
  }
}

// ---- references: materialize the logits, plain loops in double ----

namespace {

// Generic reference: rows X (R, D) against columns Y (C, D), logits S = X Y^T / t with S_{i,own[i]} masked;
// row i's loss is wr[i] * (lse_i - mean_{j in pos[i]} S_ij) (wr = 0 drops the row). Returns sum_i of it and
// adds dL/dX to dx and dL/dY to dy (either may be null).
double rows_ref(int64_t R, int64_t C, int64_t D, double t, const double* x, const double* y,
                const std::vector<int64_t>& own, const std::vector<std::vector<int64_t>>& pos,
                const std::vector<double>& wr, double* dx, double* dy) {
  std::vector<double> S(C);
  double total = 0;
  for (int64_t i = 0; i < R; ++i) {
    if (wr[i] == 0) continue;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < C; ++j) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) s += x[i * D + k] * y[j * D + k];
      S[j] = j == own[i] ? -std::numeric_limits<double>::infinity() : s / t;
      mx = std::max(mx, S[j]);
    }
    double se = 0;
    for (int64_t j = 0; j < C; ++j) se += std::exp(S[j] - mx);
    const double lse = mx + std::log(se);
    double ps = 0;
    for (int64_t j : pos[i]) ps += S[j];
    const double np = static_cast<double>(pos[i].size());
    total += wr[i] * (lse - ps / np);
    for (int64_t j = 0; j < C; ++j) {
      double gij = std::exp(S[j] - lse);
      for (int64_t p : pos[i]) gij -= p == j ? 1.0 / np : 0.0;
      gij *= wr[i] / t;
      if (gij == 0) continue;
      for (int64_t k = 0; k < D; ++k) {
        if (dx) dx[i * D + k] += gij * y[j * D + k];
        if (dy) dy[j * D + k] += gij * x[i * D + k];
      }
    }
  }
  return total;
}

}  // namespace

double supcon_ref(int64_t M, int64_t D, double temperature, const double* z, const int64_t* labels, double* dz) {
  std::vector<int64_t> own(M);
  std::vector<std::vector<int64_t>> pos(M);
  int64_t valid = 0;
  for (int64_t i = 0; i < M; ++i) {
    own[i] = i;
    for (int64_t j = 0; j < M; ++j)
      if (j != i && labels[j] == labels[i]) pos[i].push_back(j);
    valid += !pos[i].empty();
  }
  std::vector<double> wr(M);
  for (int64_t i = 0; i < M; ++i) wr[i] = pos[i].empty() ? 0.0 : 1.0 / static_cast<double>(valid);
  std::fill(dz, dz + M * D, 0.0);
  return rows_ref(M, M, D, temperature, z, z, own, pos, wr, dz, dz);
}

double clip_ref(int64_t N, int64_t D, double temperature, const double* a, const double* b, double* da, double* db) {
  std::vector<int64_t> own(N, -1);
  std::vector<std::vector<int64_t>> pos(N);
  for (int64_t i = 0; i < N; ++i) pos[i] = {i};
  std::vector<double> wr(N, 1.0 / (2.0 * static_cast<double>(N)));
  std::fill(da, da + N * D, 0.0);
  std::fill(db, db + N * D, 0.0);
  return rows_ref(N, N, D, temperature, a, b, own, pos, wr, da, db) +
         rows_ref(N, N, D, temperature, b, a, own, pos, wr, db, da);
}

double infonce_gathered_ref(int64_t n, int64_t m, int64_t offset, int64_t D, double temperature, const double* x,
                            const double* g, double* dx, double* dg) {
  const int64_t R = 2 * n;
  std::vector<int64_t> own(R);
  std::vector<std::vector<int64_t>> pos(R);
  for (int64_t r = 0; r < R; ++r) {
    own[r] = own_col(r, n, m, offset);
    pos[r] = {pos_col(r, n, m, offset)};
  }
  std::vector<double> wr(R, 1.0 / static_cast<double>(R));
  std::fill(dx, dx + R * D, 0.0);
  std::fill(dg, dg + 2 * m * D, 0.0);
  return rows_ref(R, 2 * m, D, temperature, x, g, own, pos, wr, dx, dg);
}

#define SIAM_INFONCE_INSTANTIATE(T)                                                                          \
  template void infonce_normalize_rows<T>(int64_t, int64_t, const T*, T*, T*, double);                      \
  template void infonce_normalize_backward<T>(int64_t, int64_t, const T*, const T*, const T*, T*);          \
  template double infonce_forward<T>(const InfonceArgs&, const T*, const T*, const T*, T*);                 \
  template void infonce_backward<T>(const InfonceArgs&, T, const T*, const T*, const T*, const T*, T*);     \
  template double infonce_ref<T>(const InfonceArgs&, bool, const T*, const T*, const T*, T*);             \
  template void infonce_rows_lse<T>(int64_t, int64_t, int64_t, double, const T*, const T*, const int64_t*, T*); \
  template void infonce_grad_pass<T>(int64_t, int64_t, int64_t, double, const T*, const T*, const int64_t*,    \
                                     const T*, const T*, T, T*);                                              \
  template double supcon_forward<T>(int64_t, int64_t, double, const T*, const int64_t*, T*);                  \
  template void supcon_backward<T>(int64_t, int64_t, double, T, const T*, const int64_t*, const T*, T*);      \
  template double clip_forward<T>(int64_t, int64_t, double, const T*, const T*, T*, T*);                      \
  template void clip_backward<T>(int64_t, int64_t, double, T, const T*, const T*, const T*, const T*, T*, T*); \
  template double infonce_gathered_forward<T>(int64_t, int64_t, int64_t, int64_t, double, const T*, const T*, T*); \
  template void infonce_gathered_backward<T>(int64_t, int64_t, int64_t, int64_t, double, T, const T*, const T*, \
                                             const T*, T*, T*);
SIAM_INFONCE_INSTANTIATE(float)
SIAM_INFONCE_INSTANTIATE(double)
#undef SIAM_INFONCE_INSTANTIATE

}  // namespace siam::kernels::cpu

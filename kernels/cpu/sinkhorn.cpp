// Sinkhorn-Knopp: reference and fast CPU path (see sinkhorn.h).
#include "kernels/cpu/sinkhorn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/common/fastmath.h"

namespace siam::kernels::cpu {

namespace {

constexpr int64_t kProtoBlock = 128;  // prototypes per OpenMP work item in the per-prototype (column) sums
constexpr int64_t kParallelMin = 1 << 14;
constexpr int64_t kRowChunk = 64;  // samples per work item of the plain form (its partial prototype sums)

// e^x for an argument computed in double: f32 through the vectorizable fastmath exp, f64 through libm.
template <class T> inline T exp_t(double x) {
  if constexpr (std::is_same_v<T, float>)
    return fastmath::exp_f32(static_cast<float>(x));
  else
    return std::exp(x);
}

double lse_of(const std::vector<double>& v) {
  double mx = -std::numeric_limits<double>::infinity();
  for (double x : v) mx = std::max(mx, x);
  if (!std::isfinite(mx)) return mx;
  double s = 0;
  for (double x : v) s += std::exp(x - mx);
  return mx + std::log(s);
}

template <class T>
void sinkhorn_plain(int64_t b, int64_t k, const T* s, double eps, int iters, double bg,
                    const SinkhornAllReduce& all_reduce, T* q) {
  const double inv_eps = 1.0 / eps;
  const int64_t n = b * k;
  T smax = s[0];
#pragma omp parallel for simd reduction(max : smax) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) smax = std::max(smax, s[i]);
  double shift = double(smax) * inv_eps;
  if (all_reduce) {  // one shift for all ranks: the mean of their maxima
    double buf[2] = {shift, 1.0};
    all_reduce(buf, 2);
    shift = buf[0] / buf[1];
  }
  // One pass over E (b, k) per iteration: each chunk of rows computes its samples' c_b (a row sum with the
  // current a) and, while those rows are in cache, adds E_bk c_b into its own partial prototype sums (the
  // next iteration's a), or in the last iteration writes Q. The first pass makes E and the first sums.
  const int64_t chunks = (b + kRowChunk - 1) / kRowChunk;
  std::vector<double> part(static_cast<size_t>(chunks * k)), a(k);  // (chunks, k) partial sums; (k)
  // a_k = 1 / (K sum over chunks, in chunk order, of the partial sums), after the all-reduce
  auto update_a = [&]() {
    std::fill(a.begin(), a.end(), 0.0);
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const double* pc = part.data() + ch * k;
#pragma omp simd
      for (int64_t j = 0; j < k; ++j) a[j] += pc[j];
    }
    if (all_reduce) all_reduce(a.data(), k);
    for (int64_t j = 0; j < k; ++j) a[j] = 1.0 / (double(k) * a[j]);
  };
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    double* pc = part.data() + ch * k;
    std::fill(pc, pc + k, 0.0);
    for (int64_t r = ch * kRowChunk; r < std::min(b, (ch + 1) * kRowChunk); ++r) {
      const T* sr = s + r * k;
      T* er = q + r * k;
#pragma omp simd
      for (int64_t j = 0; j < k; ++j) er[j] = exp_t<T>(double(sr[j]) * inv_eps - shift);  // E
#pragma omp simd
      for (int64_t j = 0; j < k; ++j) pc[j] += double(er[j]);  // c_b = 1 before the first iteration
    }
  }
  update_a();
  for (int it = 0; it < iters; ++it) {
    const bool last = it == iters - 1;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      double* pc = part.data() + ch * k;
      if (!last) std::fill(pc, pc + k, 0.0);
      for (int64_t r = ch * kRowChunk; r < std::min(b, (ch + 1) * kRowChunk); ++r) {
        T* er = q + r * k;
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < k; ++j) acc += double(er[j]) * a[j];
        const double cr = 1.0 / (bg * acc);  // c_b = 1 / (Bg sum_k E_bk a_k)
        if (!last) {
#pragma omp simd
          for (int64_t j = 0; j < k; ++j) pc[j] += double(er[j]) * cr;
        } else {
          const double f = bg * cr;  // Q_bk = Bg E_bk a_k c_b
#pragma omp simd
          for (int64_t j = 0; j < k; ++j) er[j] = static_cast<T>(double(er[j]) * a[j] * f);
        }
      }
    }
    if (!last) update_a();
  }
}

template <class T>
void sinkhorn_log(int64_t b, int64_t k, const T* s, double eps, int iters, double bg,
                  const SinkhornAllReduce& all_reduce, T* q) {
  const double inv_eps = 1.0 / eps, log_k = std::log(double(k)), log_bg = std::log(bg);
  const int64_t n = b * k;
  const int64_t blocks = (k + kProtoBlock - 1) / kProtoBlock;
  std::vector<double> u(k, 0.0), v(b, 0.0), lse(k), shift;  // potentials (prototypes, samples)
  // lse (k) = max_b (s_bk / eps + v_b), per block of prototypes (to_max), then the logsumexp.
  auto column_lse = [&](bool max_only) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t k0 = blk * kProtoBlock, w = std::min(kProtoBlock, k - k0);
      double mx[kProtoBlock], acc[kProtoBlock] = {};
      std::fill(mx, mx + w, -std::numeric_limits<double>::infinity());
      for (int64_t r = 0; r < b; ++r) {
        const T* sr = s + r * k + k0;
        const double vr = v[r];
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) mx[j] = std::max(mx[j], double(sr[j]) * inv_eps + vr);
      }
      if (!max_only) {
        for (int64_t r = 0; r < b; ++r) {
          const T* sr = s + r * k + k0;
          T* er = q + r * k + k0;  // the output as scratch: the exp and the sum as two loops vectorize
          const double vr = v[r];
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) er[j] = exp_t<T>(double(sr[j]) * inv_eps + vr - mx[j]);
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) acc[j] += double(er[j]);
        }
      }
      for (int64_t j = 0; j < w; ++j) lse[k0 + j] = max_only ? mx[j] : mx[j] + std::log(acc[j]);
    }
  };
  if (all_reduce) {  // first shifts: the mean over ranks of the column maxima
    column_lse(true);
    shift.assign(lse.begin(), lse.end());
    shift.push_back(1.0);
    all_reduce(shift.data(), k + 1);
    const double ranks = shift[k];
    shift.pop_back();
    for (auto& x : shift) x /= ranks;
  }
  std::vector<double> buf(all_reduce ? k : 0);
  for (int it = 0; it < iters; ++it) {
    column_lse(false);
    if (all_reduce) {
      for (int64_t j = 0; j < k; ++j) buf[j] = std::exp(lse[j] - shift[j]);
      all_reduce(buf.data(), k);
      for (int64_t j = 0; j < k; ++j) lse[j] = shift[j] = shift[j] + std::log(buf[j]);
    }
    for (int64_t j = 0; j < k; ++j) u[j] = -log_k - lse[j];
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t r = 0; r < b; ++r) {
      const T* sr = s + r * k;
      double mx = -std::numeric_limits<double>::infinity();
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < k; ++j) mx = std::max(mx, double(sr[j]) * inv_eps + u[j]);
      T* er = q + r * k;  // scratch, as above
#pragma omp simd
      for (int64_t j = 0; j < k; ++j) er[j] = exp_t<T>(double(sr[j]) * inv_eps + u[j] - mx);
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < k; ++j) acc += double(er[j]);
      v[r] = -log_bg - (mx + std::log(acc));
    }
  }
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t r = 0; r < b; ++r) {
    const T* sr = s + r * k;
    T* qr = q + r * k;
    const double vr = v[r] + log_bg;
#pragma omp simd
    for (int64_t j = 0; j < k; ++j) qr[j] = exp_t<T>(double(sr[j]) * inv_eps + u[j] + vr);
  }
}

}  // namespace

template <class T>
void sinkhorn_ref(int64_t b, int64_t k, const T* scores, double eps, int iters, bool log_domain, T* q) {
  // Q (k, b): prototypes x samples, as SwAV writes it.
  std::vector<double> Q(static_cast<size_t>(k * b));
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < b * k; ++i) mx = std::max(mx, double(scores[i]) / eps);
  for (int64_t p = 0; p < k; ++p)
    for (int64_t r = 0; r < b; ++r) Q[p * b + r] = double(scores[r * k + p]) / eps - mx;
  if (!log_domain) {
    for (auto& x : Q) x = std::exp(x);
    double total = 0;
    for (double x : Q) total += x;
    for (auto& x : Q) x /= total;
    for (int it = 0; it < iters; ++it) {
      for (int64_t p = 0; p < k; ++p) {
        double rs = 0;
        for (int64_t r = 0; r < b; ++r) rs += Q[p * b + r];
        for (int64_t r = 0; r < b; ++r) Q[p * b + r] = Q[p * b + r] / rs / double(k);
      }
      for (int64_t r = 0; r < b; ++r) {
        double cs = 0;
        for (int64_t p = 0; p < k; ++p) cs += Q[p * b + r];
        for (int64_t p = 0; p < k; ++p) Q[p * b + r] = Q[p * b + r] / cs / double(b);
      }
    }
    for (int64_t p = 0; p < k; ++p)
      for (int64_t r = 0; r < b; ++r) q[r * k + p] = static_cast<T>(Q[p * b + r] * double(b));
    return;
  }
  const double total = lse_of(Q);
  for (auto& x : Q) x -= total;
  std::vector<double> row(b), col(k);
  for (int it = 0; it < iters; ++it) {
    for (int64_t p = 0; p < k; ++p) {
      for (int64_t r = 0; r < b; ++r) row[r] = Q[p * b + r];
      const double l = lse_of(row) + std::log(double(k));
      for (int64_t r = 0; r < b; ++r) Q[p * b + r] -= l;
    }
    for (int64_t r = 0; r < b; ++r) {
      for (int64_t p = 0; p < k; ++p) col[p] = Q[p * b + r];
      const double l = lse_of(col) + std::log(double(b));
      for (int64_t p = 0; p < k; ++p) Q[p * b + r] -= l;
    }
  }
  for (int64_t p = 0; p < k; ++p)
    for (int64_t r = 0; r < b; ++r) q[r * k + p] = static_cast<T>(std::exp(Q[p * b + r] + std::log(double(b))));
}

template <class T>
void sinkhorn(int64_t b, int64_t k, const T* scores, double eps, int iters, bool log_domain, int64_t global_b,
              const SinkhornAllReduce& all_reduce, T* q) {
  const double bg = double(global_b > 0 ? global_b : b);
  if (log_domain)
    sinkhorn_log(b, k, scores, eps, iters, bg, all_reduce, q);
  else
    sinkhorn_plain(b, k, scores, eps, iters, bg, all_reduce, q);
}

#define SIAM_SINKHORN_INSTANTIATE(T)                                                \
  template void sinkhorn_ref<T>(int64_t, int64_t, const T*, double, int, bool, T*); \
  template void sinkhorn<T>(int64_t, int64_t, const T*, double, int, bool, int64_t, const SinkhornAllReduce&, T*);
SIAM_SINKHORN_INSTANTIATE(float)
SIAM_SINKHORN_INSTANTIATE(double)
#undef SIAM_SINKHORN_INSTANTIATE

}  // namespace siam::kernels::cpu

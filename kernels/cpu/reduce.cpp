#include "kernels/cpu/reduce.h"

#include <cmath>
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/common/fastmath.h"

namespace siam::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 16384;

// Accumulates in double for f32 sums: row sums of up to millions of elements stay exact enough for
// gradient checks and match PyTorch's pairwise sum to ~1e-7 relative.
template <class T> using acc_t = double;
}  // namespace

template <class T>
void reduce_rows(ReduceOp op, int64_t rows, int64_t cols, const T* x, T* out) {
  const bool par = rows * cols >= kParallelMin && rows > 1;
  if (op == ReduceOp::sum) {
    if (rows == 1 && cols >= kParallelMin) {
      // Fixed blocks summed in a fixed order: the result does not depend on the thread count.
      constexpr int64_t kBlock = 16384;
      const int64_t nb = (cols + kBlock - 1) / kBlock;
      std::vector<acc_t<T>> partial(static_cast<size_t>(nb));
#pragma omp parallel for schedule(static)
      for (int64_t b = 0; b < nb; ++b) {
        const T* p = x + b * kBlock;
        const int64_t n = std::min(kBlock, cols - b * kBlock);
        acc_t<T> s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < n; ++c) s += p[c];
        partial[b] = s;
      }
      acc_t<T> s = 0;
      for (auto v : partial) s += v;
      out[0] = static_cast<T>(s);
      return;
    }
#pragma omp parallel for if (par)
    for (int64_t r = 0; r < rows; ++r) {
      const T* p = x + r * cols;
      acc_t<T> s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < cols; ++c) s += p[c];
      out[r] = static_cast<T>(s);
    }
    return;
  }
  const bool is_max = op == ReduceOp::max;
#pragma omp parallel for if (par)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * cols;
    T m = is_max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    bool nan = false;
    for (int64_t c = 0; c < cols; ++c) {
      T v = p[c];
      if (v != v) nan = true;
      m = is_max ? (v > m ? v : m) : (v < m ? v : m);
    }
    out[r] = nan ? std::numeric_limits<T>::quiet_NaN() : m;
  }
}

template <class T>
void reduce_outer(ReduceOp op, int64_t outer, int64_t inner, const T* x, T* out) {
  // Blocks of output columns in parallel; each walks the rows in order (deterministic), reading every
  // row of its block contiguously.
  constexpr int64_t kCols = 512;
  const int64_t nb = (inner + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (outer * inner >= kParallelMin && nb > 1)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t j0 = b * kCols, n = std::min(kCols, inner - j0);
    acc_t<T> acc[kCols];
    const T init = op == ReduceOp::max ? -std::numeric_limits<T>::infinity()
                   : op == ReduceOp::min ? std::numeric_limits<T>::infinity()
                                         : T(0);
    for (int64_t j = 0; j < n; ++j) acc[j] = init;
    for (int64_t i = 0; i < outer; ++i) {
      const T* p = x + i * inner + j0;
      if (op == ReduceOp::sum) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) acc[j] += p[j];
      } else if (op == ReduceOp::max) {
        for (int64_t j = 0; j < n; ++j) acc[j] = (p[j] > acc[j] || p[j] != p[j]) ? p[j] : acc[j];
      } else {
        for (int64_t j = 0; j < n; ++j) acc[j] = (p[j] < acc[j] || p[j] != p[j]) ? p[j] : acc[j];
      }
    }
    for (int64_t j = 0; j < n; ++j) out[j0 + j] = static_cast<T>(acc[j]);
  }
}

namespace {
// f32 exp through the branch-free approximation of kernels/common/fastmath.h (<= 1.03 ulp), which GCC
// vectorizes in the simd loops below; f64 keeps libm (the f64 paths back the gradient checks).
template <class T> inline T exp_t(T x) {
  if constexpr (std::is_same_v<T, float>) return fastmath::exp_f32(x);
  else return std::exp(x);
}
// Max of a row; NaNs are skipped here (they reach the result through exp and the sum).
template <class T> inline T row_max(const T* p, int64_t cols) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t c = 0; c < cols; ++c) m = p[c] > m ? p[c] : m;
  return m;
}
}  // namespace

template <class T>
void softmax_rows(int64_t rows, int64_t cols, const T* x, T* y, bool log) {
#pragma omp parallel for if (rows * cols >= kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * cols;
    T* q = y + r * cols;
    T m = row_max(p, cols);
    if (m == -std::numeric_limits<T>::infinity()) m = 0;
    T s = 0;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < cols; ++c) s += exp_t(p[c] - m);
      const T lse = m + std::log(s);
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) q[c] = p[c] - lse;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < cols; ++c) {
        q[c] = exp_t(p[c] - m);
        s += q[c];
      }
      const T inv = T(1) / s;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) q[c] *= inv;
    }
  }
}

template <class T>
void logsumexp_rows(int64_t rows, int64_t cols, const T* x, T* out) {
#pragma omp parallel for if (rows * cols >= kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * cols;
    const T m = row_max(p, cols);
    if (m == -std::numeric_limits<T>::infinity() || m == std::numeric_limits<T>::infinity()) {
      out[r] = m;
      continue;
    }
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; ++c) s += exp_t(p[c] - m);
    out[r] = m + std::log(s);
  }
}

template <class T>
void softmax_backward_rows(int64_t rows, int64_t cols, const T* g, const T* y, T* gx, bool log) {
#pragma omp parallel for if (rows * cols >= kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* pg = g + r * cols;
    const T* py = y + r * cols;
    T* o = gx + r * cols;
    T s = 0;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < cols; ++c) s += pg[c];
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) o[c] = pg[c] - exp_t(py[c]) * s;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < cols; ++c) s += pg[c] * py[c];
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) o[c] = py[c] * (pg[c] - s);
    }
  }
}

#define SIAM_INST(T)                                                                        \
  template void reduce_rows<T>(ReduceOp, int64_t, int64_t, const T*, T*);                   \
  template void reduce_outer<T>(ReduceOp, int64_t, int64_t, const T*, T*);                  \
  template void softmax_rows<T>(int64_t, int64_t, const T*, T*, bool);                      \
  template void logsumexp_rows<T>(int64_t, int64_t, const T*, T*);                          \
  template void softmax_backward_rows<T>(int64_t, int64_t, const T*, const T*, T*, bool);
SIAM_INST(float)
SIAM_INST(double)
#undef SIAM_INST

}  // namespace siam::kernels::cpu

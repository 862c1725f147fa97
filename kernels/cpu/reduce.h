// Row reductions and row-wise softmax kernels on contiguous (rows, cols) data.
//   reduce_rows:   out[r] = op_{c} x[r, c]                op in {sum, max, min}
//   reduce_outer:  out[c] = op_{r} x[r, c]                (reduced dims leading, kept dims contiguous)
// Both are deterministic: the summation order does not depend on the thread count.
//   softmax_rows:  y[r, :] = softmax(x[r, :]) or log_softmax when log = true
//   logsumexp_rows: out[r] = log sum_c exp(x[r, c])     (max-shifted, stable)
//   softmax_backward_rows: gx = y * (g - sum(g * y))      (log: gx = g - exp(y) * sum(g))
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

enum class ReduceOp : uint8_t { sum, max, min };

template <class T> void reduce_rows(ReduceOp op, int64_t rows, int64_t cols, const T* x, T* out);
// out[j] = op_i x[i, j] over contiguous (outer, inner) data: the reduced dims lead, the kept ones follow.
template <class T> void reduce_outer(ReduceOp op, int64_t outer, int64_t inner, const T* x, T* out);
template <class T> void softmax_rows(int64_t rows, int64_t cols, const T* x, T* y, bool log);
template <class T> void logsumexp_rows(int64_t rows, int64_t cols, const T* x, T* out);
template <class T> void softmax_backward_rows(int64_t rows, int64_t cols, const T* g, const T* y, T* gx, bool log);

}  // namespace siam::kernels::cpu

// CUDA row reductions and the softmax family: the twins of kernels/cpu/reduce.h (same op enum, same
// results up to summation order), f32 and f64, on contiguous device data, launched on the current stream.
// Declared without CUDA headers (called by engine/ops/reduce.cpp).
//   reduce_rows:    out[r] = op_c x[r, c]                     x (rows, cols)
//   reduce_outer:   out[c] = op_r x[r, c]                     x (outer, inner): reduced dims leading
//   softmax_rows:   y[r, :] = softmax(x[r, :]) (log_softmax when log)
//   logsumexp_rows: out[r] = log sum_c exp(x[r, c])            (max-shifted)
//   softmax_backward_rows: gx = y * (g - sum(g * y)); log: gx = g - exp(y) * sum(g)
//   argmax_rows:    out[r] = first c with the largest x[r, c]  (i64; NaNs skipped unless x[r, 0] is NaN, as
//                   the CPU's sequential scan)
// Sums accumulate in f64 for f32 data, as on the CPU; max/min propagate NaN. The summation order is fixed
// by the launch shape (deterministic from run to run).
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"
#include "kernels/cpu/reduce.h"  // ReduceOp

namespace siam::kernels::cuda {

using cpu::ReduceOp;

void reduce_rows(ReduceOp op, DType dtype, int64_t rows, int64_t cols, const void* x, void* out);
void reduce_outer(ReduceOp op, DType dtype, int64_t outer, int64_t inner, const void* x, void* out);
void softmax_rows(DType dtype, int64_t rows, int64_t cols, const void* x, void* y, bool log);
void logsumexp_rows(DType dtype, int64_t rows, int64_t cols, const void* x, void* out);
void softmax_backward_rows(DType dtype, int64_t rows, int64_t cols, const void* g, const void* y, void* gx, bool log);
void argmax_rows(DType dtype, int64_t rows, int64_t cols, const void* x, int64_t* out);

}  // namespace siam::kernels::cuda

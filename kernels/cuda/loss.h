// Fused CUDA loss kernels: cross-entropy over class indices and L2 normalization, each a forward and a
// backward, f32 and f64, on contiguous device data, launched on the current stream. Declared without CUDA
// headers (called by engine/ops/loss.cpp, which composes primitives on the CPU: the tests compare the two).
//   cross_entropy_forward:  logits (N, C), target (N) i64 in [0, C) (checked by the caller), smoothing s:
//       lse[i]  = log sum_j exp(x[i, j])
//       loss[i] = (1 - s) (lse[i] - x[i, t_i]) + s (lse[i] - mean_j x[i, j])
//   cross_entropy_backward: dx[i, j] = g[i] (exp(x[i, j] - lse[i]) - (1 - s) [j = t_i] - s / C)
//   l2_normalize_forward:   x (rows, cols): norm[r] = |x[r, :]|, y[r, :] = x[r, :] / max(norm[r], eps)
//   l2_normalize_backward:  dx = (g - y (g . y)) / norm where norm >= eps (and > 0), else g / eps
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

void cross_entropy_forward(DType dtype, int64_t n, int64_t c, const void* logits, const int64_t* target,
                           double smoothing, void* loss, void* lse);
void cross_entropy_backward(DType dtype, int64_t n, int64_t c, const void* logits, const int64_t* target,
                            const void* lse, const void* g, double smoothing, void* dlogits);
void l2_normalize_forward(DType dtype, int64_t rows, int64_t cols, const void* x, double eps, void* y, void* norm);
void l2_normalize_backward(DType dtype, int64_t rows, int64_t cols, const void* g, const void* y, const void* norm,
                           double eps, void* gx);

}  // namespace siam::kernels::cuda

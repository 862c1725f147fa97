// Barlow Twins cross-correlation on CUDA: the twin of kernels/cpu/xcorr.h's fused path (same math, shared through
// kernels/common/xcorr_math.h). engine/ops/siamese.cpp runs
//   xcorr_standardize(z1), xcorr_standardize(z2)     zh (N, D), rstd (D)
//   C = zh1^T zh2 / N                                 cuBLASLt (the engine's matmul)
//   xcorr_loss(C)                                     the loss, reduced in a fixed order (deterministic)
// and backward
//   xcorr_dc(C, grad)                                 dC (D, D), grad read on the device (no host sync)
//   dzh1 = zh2 dC^T / N, dzh2 = zh1 dC / N            cuBLASLt
//   xcorr_standardize_backward(dzh) in place          dz
// Declared without CUDA headers; device pointers, contiguous row-major, the current stream; dt f32 or f64
// (statistics and the loss accumulate in double either way).
// Versions (kernels in xcorr.cu):
//   xcorr_standardize_kernel1 / xcorr_standardize_backward_kernel1: 32 columns x 8 row groups per block, the
//                         column sums of the 8 groups combined in a fixed order; coalesced along the features.
//   xcorr_row_loss_kernel1: a block per row of C, then xcorr_sum_kernel1: one block sums the rows; both
//                         reduce with kernels/cuda/rowwise.cuh's group_reduce (a fixed order: deterministic).
//   xcorr_dc_kernel1:     grid-stride element-wise over D x D.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

// zh (n, d) = (x - mean) * rstd per column over the n rows, rstd (d); n >= 1.
void xcorr_standardize(DType dt, int64_t n, int64_t d, const void* x, double eps, void* zh, void* rstd);
// loss (1 element of dt) = sum_i [lambda (sum_j C_ij^2 - C_ii^2) + (1 - C_ii)^2]; row_partials: d doubles of
// device scratch.
void xcorr_loss(DType dt, int64_t d, double lambda, const void* c, double* row_partials, void* loss);
// dc (d, d) = grad[0] * dL/dC; grad: 1 element of dt on the device.
void xcorr_dc(DType dt, int64_t d, double lambda, const void* grad, const void* c, void* dc);
// g (n, d) <- rstd * (g - mean_n(g) - zh * mean_n(g * zh)) per column, in place.
void xcorr_standardize_backward(DType dt, int64_t n, int64_t d, const void* zh, const void* rstd, void* g);

}  // namespace siam::kernels::cuda

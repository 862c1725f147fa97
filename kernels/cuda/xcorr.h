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
//
// VICReg on CUDA (the same column machinery; the twin of kernels/cpu/consistency.h's vicreg_forward /
// vicreg_backward, per-feature arithmetic shared through kernels/common/vicreg_math.h). engine/ops/consistency.cpp
// runs
//   vicreg_center(z1), vicreg_center(z2)            Zc (N, D), mean, var (D) in dt, var in double
//   G = Zc Zc^T (N < D) or C = Zc^T Zc / (N - 1)    cuBLASLt, per branch
//   vicreg_sq_rows(z1 - z2), vicreg_sq_rows(G or C) per-row sums of squares (C's diagonal left out)
//   vicreg_terms_finish                             the three terms, one block, a fixed order (deterministic)
// and backward
//   P = Zc C or G Zc                                 cuBLASLt
//   vicreg_backward_rows(P) in place                 dz; the three upstream gradients read on the device
// Versions: vicreg_center_kernel1 as xcorr_standardize_kernel1; vicreg_sq_rows_kernel1 a block per row;
//   vicreg_finish_kernel1 one block; vicreg_backward_kernel1 grid-stride element-wise.
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

// zc (n, d) = x - mean per column; mean, var (d) of dt, var_d (d doubles): the unbiased variance of the
// T-rounded zc (as the CPU); n >= 2.
void vicreg_center(DType dt, int64_t n, int64_t d, const void* x, void* zc, void* mean, void* var, double* var_d);
// rows (r doubles): rows[i] = sum_j (a_ij - b_ij)^2 (b null: a_ij^2), leaving out a_ii^2 when skip_diag.
void vicreg_sq_rows(DType dt, int64_t r, int64_t c, const void* a, const void* b, bool skip_diag, double* rows);
// out (3 elements of dt): invariance, variance, covariance from the row sums (inv_rows n; gram rows g each) and
// var_d1, var_d2 (d). gram_form: the rows are of G = Zc Zc^T (else of C without its diagonal).
void vicreg_finish(DType dt, int64_t n, int64_t d, int64_t g, bool gram_form, double eps, const double* inv_rows,
                   const double* gram_rows1, const double* gram_rows2, const double* var_d1, const double* var_d2,
                   void* out);
// p (n, d) <- dz of branch `branch` (0: z1, 1: z2), in place: p holds Zc C (C form) or G Zc (Gram form),
// scaled by cov_scale inside; diag: C_jj at diag[j * diag_stride] (C's diagonal, or var with stride 1);
// grad: the 3 upstream gradients (elements of dt) on the device.
void vicreg_backward_rows(DType dt, int64_t n, int64_t d, int branch, double eps, double cov_scale, const void* grad,
                          const void* zc1, const void* zc2, const void* mean1, const void* mean2, const void* var,
                          const void* diag, int64_t diag_stride, void* p);

}  // namespace siam::kernels::cuda

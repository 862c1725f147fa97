// Barlow Twins cross-correlation: the per-element arithmetic shared by the CPU fused path (kernels/cpu/xcorr.cpp)
// and the CUDA kernels (kernels/cuda/xcorr.cu), so the CPU tests exercise the same formulas the device runs.
//   rstd = 1 / sqrt(sum_n (x - mean)^2 / n + eps)                          (biased variance, batch norm's)
//   row loss of C:  lambda * (sum_j C_ij^2 - C_ii^2) + (1 - C_ii)^2
//   dC_ij = grad * (i == j ? 2 (C_ii - 1) : 2 lambda C_ij)      (on = 2 grad, off = 2 lambda grad)
//   dz = rstd * (dzh - mean_n(dzh) - zh * mean_n(dzh * zh))                 (the standardization backward)
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common/macros.h"

namespace siam::kernels {

SIAM_HD_INLINE double xcorr_rstd(double sq_dev_sum, int64_t n, double eps) {
  return 1.0 / sqrt(sq_dev_sum / static_cast<double>(n) + eps);
}

SIAM_HD_INLINE double xcorr_row_loss(double row_sq_sum, double diag, double lambda) {
  return lambda * (row_sq_sum - diag * diag) + (1.0 - diag) * (1.0 - diag);
}

template <class T>
SIAM_HD_INLINE T xcorr_dc(T c, bool diag, T on, T off) {
  return diag ? on * (c - T(1)) : off * c;
}

template <class T>
SIAM_HD_INLINE T xcorr_standardize_grad(T g, T zh, T mean_g, T mean_gz, T rstd) {
  return rstd * (g - mean_g - zh * mean_gz);
}

}  // namespace siam::kernels

// VICReg: the per-feature arithmetic shared by the CPU fused path (kernels/cpu/consistency.cpp) and the CUDA
// kernels (kernels/cuda/xcorr.cu), so the CPU tests exercise the formulas the device runs. With var_j the
// unbiased variance of feature j (over the N rows), std_j = sqrt(var_j + eps), D features:
//   variance hinge of feature j:   relu(1 - std_j)
//   coefficient of Zc_nj in dz:    -g_cov 4 C_jj / (D (N - 1)) - [std_j < 1] g_var / (2 D std_j (N - 1))
//     (the covariance term's diagonal, which the product Zc C includes and the loss leaves out, and the
//     variance hinge's gradient); the rest of dz is g_cov 4 / (D (N - 1)) (Zc C)_nj and the invariance term.
#pragma once
#include <cmath>

#include "kernels/common/macros.h"

namespace siam::kernels {

SIAM_HD_INLINE double vicreg_hinge(double var, double eps) {
  const double sd = sqrt(var + eps);
  return sd < 1.0 ? 1.0 - sd : 0.0;
}

SIAM_HD_INLINE double vicreg_zc_coef(double cjj, double var, double eps, double g_var, double g_cov, double d,
                                     double nm1) {
  const double sd = sqrt(var + eps);
  double c = -g_cov * 4.0 * cjj / (d * nm1);
  if (sd < 1.0) c -= g_var / (2.0 * d * sd * nm1);
  return c;
}

}  // namespace siam::kernels

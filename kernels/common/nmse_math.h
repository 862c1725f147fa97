// BYOL / SimSiam's normalized MSE: the per-row arithmetic shared by the CPU fused path
// (kernels/cpu/consistency.cpp) and the CUDA kernels (kernels/cuda/consistency.cu).
//   c_i = p_i . z_i / (max(|p_i|, eps) max(|z_i|, eps)),  L = mean_i (2 - 2 c_i)
//   with coef = -2 grad / N, rp = 1 / max(|p|, eps), rz likewise:
//   dp = a z - bp p,  dz = a p - bz z,  a = coef rp rz,  bp = coef rp^2 c (0 when |p| <= eps),  bz likewise.
#pragma once
#include <cmath>

#include "kernels/common/macros.h"

namespace siam::kernels {

constexpr double kNmseNormEps = 1e-12;  // as engine normalize's default

SIAM_HD_INLINE double nmse_cos(double pp, double zz, double pz) {
  const double np = sqrt(pp), nz = sqrt(zz);
  return pz / ((np > kNmseNormEps ? np : kNmseNormEps) * (nz > kNmseNormEps ? nz : kNmseNormEps));
}

struct NmseCoefs {
  double a, bp, bz;
};

SIAM_HD_INLINE NmseCoefs nmse_coefs(double coef, double np, double nz, double c) {
  const double rp = 1.0 / (np > kNmseNormEps ? np : kNmseNormEps), rz = 1.0 / (nz > kNmseNormEps ? nz : kNmseNormEps);
  return {coef * rp * rz, np > kNmseNormEps ? coef * rp * rp * c : 0.0, nz > kNmseNormEps ? coef * rz * rz * c : 0.0};
}

}  // namespace siam::kernels

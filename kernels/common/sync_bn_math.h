// SyncBatchNorm: the per-channel arithmetic shared by the CPU path (engine/nn/sync_batchnorm.cpp) and the CUDA
// kernels (kernels/cuda/sync_batchnorm.cu), so the CPU tests exercise the formulas the device runs.
// Every rank contributes a record of 2C + 1 doubles, [n_r, mean_r (C), M2_r (C)] (M2: the sum of squared
// deviations from mean_r); `all` holds the W records in rank order.
//   count = sum_r n_r
//   mean  = sum_r n_r mean_r / count,  var = sum_r (M2_r + n_r (mean_r - mean)^2) / count  (Chan's merge, biased)
// and the input gradient with the global per-channel sums (g_b = sum gy, g_w = sum gy xhat over every rank):
//   gx = w invstd (gy - g_b / count - xhat g_w / count).
#pragma once
#include <cstdint>

#include "kernels/common/macros.h"

namespace siam::kernels {

SIAM_HD_INLINE double sync_bn_count(const double* all, int world, int64_t C) {
  double n = 0;
  for (int r = 0; r < world; ++r) n += all[r * (2 * C + 1)];
  return n;
}

// Global mean and biased variance of channel c, merged in rank order.
SIAM_HD_INLINE void sync_bn_merge(const double* all, int world, int64_t C, int64_t c, double count, double& mean,
                                  double& var) {
  const int64_t rec = 2 * C + 1;
  double m = 0;
  for (int r = 0; r < world; ++r) m += all[r * rec] * all[r * rec + 1 + c];
  m /= count;
  double m2 = 0;
  for (int r = 0; r < world; ++r) {
    const double* s = all + r * rec;
    const double d = s[1 + c] - m;
    m2 += s[1 + C + c] + s[0] * d * d;
  }
  mean = m;
  var = m2 / count;
}

// A running statistic after a training step: (1 - momentum) running + momentum stat (the variance passes its
// unbiased value, var count / (count - 1)), in double.
SIAM_HD_INLINE double sync_bn_running(double running, double stat, double momentum) {
  return (1.0 - momentum) * running + momentum * stat;
}

// gx of one element: g the incoming gradient, x the input, scale = w invstd, mg = g_b / count, mgx = g_w / count.
SIAM_HD_INLINE double sync_bn_input_grad(double g, double x, double mean, double invstd, double scale, double mg,
                                         double mgx) {
  const double xh = (x - mean) * invstd;
  return scale * (g - mg - xh * mgx);
}

}  // namespace siam::kernels

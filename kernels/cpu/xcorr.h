// Barlow Twins cross-correlation loss on the CPU (see /work/shared/KERNEL_NOTES.md, "Cross-correlation").
//
//   z1, z2 (N, D) row-major. Per feature d, over the batch: mean, biased var, rstd = 1 / sqrt(var + eps);
//   zh = (z - mean) * rstd  (batch standardization, no affine).
//   C (D, D) = zh1^T zh2 / N.   L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2.
//   backward: dC = grad * (2 (C_ii - 1) on the diagonal, 2 lambda C_ij off it);
//             dzh1 = zh2 dC^T / N,  dzh2 = zh1 dC / N;
//             dz = rstd * (dzh - mean_n(dzh) - zh * mean_n(dzh * zh))   (per feature, the batch-norm backward).
//
// Versions:
//   xcorr_ref:      plain loops in double, loss and gradients in one call.
//   xcorr_forward / xcorr_backward: the fused path. Forward: statistics and standardization in one kernel
//                   (OpenMP over feature blocks, statistics accumulated in double), C by one sgemm, the loss
//                   reduced per row of C then summed in row order (deterministic). It keeps zh1, zh2 (N, D),
//                   rstd1, rstd2 (D) and C (D, D) for the backward. Backward: dC (D, D) scratch, two sgemms
//                   writing dzh straight into dz1/dz2, then the standardization backward in place.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

template <class T>
double xcorr_ref(int64_t n, int64_t d, const T* z1, const T* z2, double lambda, double eps, T* dz1, T* dz2);

// Writes zh1, zh2 (n, d), rstd1, rstd2 (d), c (d, d); returns the loss.
template <class T>
double xcorr_forward(int64_t n, int64_t d, const T* z1, const T* z2, double lambda, double eps, T* zh1, T* zh2,
                     T* rstd1, T* rstd2, T* c);
// dz1, dz2 (n, d) = grad * dL/dz from the forward's saved buffers.
template <class T>
void xcorr_backward(int64_t n, int64_t d, T grad, double lambda, const T* zh1, const T* zh2, const T* rstd1,
                    const T* rstd2, const T* c, T* dz1, T* dz2);

}  // namespace siam::kernels::cpu

// Batch norm and layer norm on the CPU, forward and backward each as one fused kernel.
//
// batch_norm: x (N, C, L) contiguous (L = 1 for (N, C), L = H*W for (N, C, H, W)); y (N, C, L).
//   training:  mean[c] = mean_{n,l} x[n,c,l];  var[c] = biased variance;  invstd[c] = 1 / sqrt(var[c] + eps)
//   eval:      mean/invstd come from the running statistics (the caller passes them in).
//   y = (x - mean[c]) * invstd[c] * w[c] + b[c]      (w, b may be null: 1 and 0)
//   backward, training (M = N*L, xhat = (x - mean) * invstd):
//     gb[c] = sum gy;  gw[c] = sum gy * xhat;  gx = w[c] * invstd[c] / M * (M * gy - gb[c] - xhat * gw[c])
//   backward, eval: gx = gy * w[c] * invstd[c]; gw and gb as above.
//   Statistics: the ref accumulates in double; the fast path sums each contiguous row of L in T and the rows in
//   double, two passes (mean, then squared deviations). It splits channels over OpenMP (for L == 1, rows, with
//   per-thread column accumulators in double).
//
// layer_norm: x (R, D) contiguous, normalized over each row of D; w, b (D) or null; mean/invstd (R).
//   backward: gx = invstd * (gy*w - mean_d(gy*w) - xhat * mean_d(gy*w*xhat)); gw[d] = sum_r gy*xhat; gb = sum_r gy.
//
// Versions: *_ref (plain loops, two passes in double) and the fast path.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

// Training forward: writes y and, per channel, the batch mean, biased var and invstd.
template <class T>
void batch_norm_train_forward_ref(int64_t N, int64_t C, int64_t L, const T* x, const T* w, const T* b, double eps, T* y,
                                  T* mean, T* var, T* invstd);
template <class T>
void batch_norm_train_forward(int64_t N, int64_t C, int64_t L, const T* x, const T* w, const T* b, double eps, T* y,
                              T* mean, T* var, T* invstd);
// Normalization with given per-channel mean and invstd (eval mode).
template <class T>
void batch_norm_apply(int64_t N, int64_t C, int64_t L, const T* x, const T* mean, const T* invstd, const T* w,
                      const T* b, T* y);
// Backward; train = true uses the batch-statistics formula. gx/gw/gb may each be null.
template <class T>
void batch_norm_backward_ref(int64_t N, int64_t C, int64_t L, const T* x, const T* gy, const T* mean, const T* invstd,
                             const T* w, bool train, T* gx, T* gw, T* gb);
template <class T>
void batch_norm_backward(int64_t N, int64_t C, int64_t L, const T* x, const T* gy, const T* mean, const T* invstd,
                         const T* w, bool train, T* gx, T* gw, T* gb);

template <class T>
void layer_norm_forward_ref(int64_t R, int64_t D, const T* x, const T* w, const T* b, double eps, T* y, T* mean,
                            T* invstd);
template <class T>
void layer_norm_forward(int64_t R, int64_t D, const T* x, const T* w, const T* b, double eps, T* y, T* mean, T* invstd);
template <class T>
void layer_norm_backward_ref(int64_t R, int64_t D, const T* x, const T* gy, const T* mean, const T* invstd, const T* w,
                             T* gx, T* gw, T* gb);
template <class T>
void layer_norm_backward(int64_t R, int64_t D, const T* x, const T* gy, const T* mean, const T* invstd, const T* w,
                         T* gx, T* gw, T* gb);

}  // namespace siam::kernels::cpu

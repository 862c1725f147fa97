// Per-element updates of the multi-tensor kernels, shared by host and device: the CUDA kernels
// (kernels/cuda/multi_tensor.cu) call them, and tests/cuda/fused_parity_test.cpp checks them on the CPU
// against kernels/cpu/multi_tensor.h (the same formulas, engine/optim/{sgd,lars}.h).
#pragma once
#include "kernels/common/macros.h"

namespace siam {

// target <- m * target + (1 - m) * online
template <class T> SIAM_HD_INLINE T mt_ema_elem(T t, T o, T m, T one_minus_m) { return m * t + one_minus_m * o; }

// SGD (torch.optim.SGD): d = g + wd p; buf = init ? d : mom buf + (1 - damp) d; u = nesterov ? d + mom buf : buf;
// p -= lr u. `damp1` is 1 - dampening; has_mom false: p -= lr d (buf untouched).
template <class T>
SIAM_HD_INLINE void mt_sgd_elem(T& p, T g, T& buf, T wd, T mom, T damp1, T neg_lr, bool has_mom, bool init,
                                bool nesterov) {
  const T d = g + p * wd;
  if (!has_mom) {
    p = p + d * neg_lr;
    return;
  }
  const T b = init ? d : buf * mom + d * damp1;
  buf = b;
  const T u = nesterov ? d + b * mom : b;
  p = p + u * neg_lr;
}

// LARS (SimCLR's form): d = g + wd p; no momentum: p -= slr d; else v = mom v + slr d,
// p = nesterov ? p - mom v - slr d : p - v.
template <class T>
SIAM_HD_INLINE void mt_lars_elem(T& p, T g, T& v, T wd, T slr, T mom, bool has_mom, bool nesterov) {
  const T d = g + p * wd;
  if (!has_mom) {
    p = p - d * slr;
    return;
  }
  const T b = v * mom + d * slr;
  v = b;
  p = nesterov ? (p - b * mom) - d * slr : p - b;
}

// LARS's per-tensor learning rate from |p| and |g + wd p| (both >= 0): trust = eta |p| / |d| when both are
// positive, else 1; clip_lr: min(trust, lr), else lr * trust.
SIAM_HD_INLINE double lars_scaled_lr(double p_norm, double d_norm, double lr, double eta, bool clip_lr) {
  const double trust = p_norm > 0 && d_norm > 0 ? eta * p_norm / d_norm : 1.0;
  return clip_lr ? (trust < lr ? trust : lr) : lr * trust;
}

}  // namespace siam

// Online logsumexp state (running max m and sum s of exp(x - m)), shared by the CUDA InfoNCE kernels
// (kernels/cuda/infonce.cu) and tested on the CPU (tests/cuda/fused_parity_test.cpp, OnlineLse.*).
//   empty state:  m = -inf, s = 0                      lse = m + log(s) = -inf
//   merge(a, b):  m = max(a.m, b.m), s = a.s e^(a.m - m) + b.s e^(b.m - m)
// An empty side contributes 0 (never e^(-inf - -inf) = NaN), so states merge in any grouping; the order of
// merges changes the result only by rounding.
#pragma once
#include <cmath>
#include <limits>

#include "kernels/common/fastmath.h"
#include "kernels/common/macros.h"

namespace siam {

SIAM_HD_INLINE float lse_exp(float x) { return fastmath::exp_f32(x); }
SIAM_HD_INLINE double lse_exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return std::exp(x);
#endif
}

template <class T> struct OnlineLse {
  T m, s;
};

template <class T> SIAM_HD_INLINE OnlineLse<T> online_lse_empty() {
  return {-std::numeric_limits<T>::infinity(), T(0)};
}

template <class T> SIAM_HD_INLINE OnlineLse<T> online_lse_merge(OnlineLse<T> a, OnlineLse<T> b) {
  if (a.s == T(0)) return b;
  if (b.s == T(0)) return a;
  const T m = a.m > b.m ? a.m : b.m;
  return {m, a.s * lse_exp(a.m - m) + b.s * lse_exp(b.m - m)};
}

// Adds the values v[0..n) (entries with valid[k] false are skipped) to the state: one exp per value plus one
// rescale, as a tile update does.
template <class T, int N> SIAM_HD_INLINE OnlineLse<T> online_lse_add(OnlineLse<T> st, const T (&v)[N],
                                                                     const bool (&valid)[N]) {
  T mx = st.m;
  bool any = false;
  SIAM_UNROLL
  for (int k = 0; k < N; ++k)
    if (valid[k]) {
      mx = (!any && st.s == T(0)) || v[k] > mx ? v[k] : mx;
      any = true;
    }
  if (!any) return st;
  T s = st.s == T(0) ? T(0) : st.s * lse_exp(st.m - mx);
  SIAM_UNROLL
  for (int k = 0; k < N; ++k)
    if (valid[k]) s += lse_exp(v[k] - mx);
  return {mx, s};
}

}  // namespace siam

// Fused cross-entropy and L2 normalization on CUDA (shapes and formulas in loss.h).
// Versions:
//   cross_entropy_fwd_kernel1  group per row (rowwise.cuh): max, then sum of exp (and of x when smoothing), one
//                              read of the row per pass; writes loss and lse (N each), never the (N, C)
//                              log-probabilities the composition materializes.
//   cross_entropy_bwd_kernel1  one thread per logit: recomputes exp(x - lse) instead of storing probabilities.
//   l2_normalize_fwd_kernel1   group per row: sum of squares, then the scaled row.
//   l2_normalize_bwd_kernel1   group per row: g . y, then the row of dx.
// f32 exp through kernels/common/fastmath.h as everywhere; sums in the data type (as the CPU's softmax).
#include <cuda_runtime.h>

#include "kernels/cuda/check.h"
#include "kernels/cuda/loss.h"
#include "kernels/cuda/offset.cuh"
#include "kernels/cuda/rowwise.cuh"

namespace siam::kernels::cuda {

namespace {

using namespace rowwise;

__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return ::sqrt(x); }

template <class T>
__global__ void cross_entropy_fwd_kernel1(int64_t n, int64_t c, const T* __restrict__ x,
                                          const int64_t* __restrict__ target, T smoothing, T* __restrict__ loss,
                                          T* __restrict__ lse_out, bool warp) {
  const Group g{warp};
  T* smem = shared_buf<T>();
  for (int64_t r = g.first(); r < n; r += g.stride()) {
    const T* p = x + r * c;
    T m = MaxSkipNanOp<T>::identity();
#pragma unroll 4
    for (int64_t j = g.rank(); j < c; j += g.size()) m = MaxSkipNanOp<T>::combine(m, p[j]);
    m = group_reduce<MaxSkipNanOp<T>>(m, g, smem);
    if (m == -d_inf<T>()) m = T(0);
    T s = 0, sx = 0;
#pragma unroll 4
    for (int64_t j = g.rank(); j < c; j += g.size()) {
      s += d_exp(p[j] - m);
      sx += p[j];
    }
    s = group_reduce<SumOp<T>>(s, g, smem);
    if (smoothing != T(0)) sx = group_reduce<SumOp<T>>(sx, g, smem);
    if (g.rank() == 0) {
      const T lse = m + d_log(s);
      T l = (T(1) - smoothing) * (lse - p[target[r]]);
      if (smoothing != T(0)) l += smoothing * (lse - sx / static_cast<T>(c));
      loss[r] = l;
      lse_out[r] = lse;
    }
  }
}

template <class T>
__global__ void cross_entropy_bwd_kernel1(int64_t n, int64_t c, const T* __restrict__ x,
                                          const int64_t* __restrict__ target, const T* __restrict__ lse,
                                          const T* __restrict__ g, T smoothing, T* __restrict__ dx) {
  const T off = smoothing / static_cast<T>(c), hit = T(1) - smoothing;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n * c;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / c, j = e - r * c;
    T d = d_exp(x[e] - lse[r]) - off;
    if (j == target[r]) d -= hit;
    dx[e] = g[r] * d;
  }
}

template <class T>
__global__ void l2_normalize_fwd_kernel1(int64_t rows, int64_t cols, const T* __restrict__ x, T eps, T* __restrict__ y,
                                         T* __restrict__ norm, bool warp) {
  const Group g{warp};
  T* smem = shared_buf<T>();
  for (int64_t r = g.first(); r < rows; r += g.stride()) {
    const T* p = x + r * cols;
    T s = 0;
#pragma unroll 4
    for (int64_t j = g.rank(); j < cols; j += g.size()) s += p[j] * p[j];
    s = group_reduce<SumOp<T>>(s, g, smem);
    const T nr = d_sqrt(s);
    const T inv = T(1) / (nr > eps ? nr : eps);
    T* q = y + r * cols;
#pragma unroll 4
    for (int64_t j = g.rank(); j < cols; j += g.size()) q[j] = p[j] * inv;
    if (g.rank() == 0) norm[r] = nr;
  }
}

template <class T>
__global__ void l2_normalize_bwd_kernel1(int64_t rows, int64_t cols, const T* __restrict__ gr, const T* __restrict__ y,
                                         const T* __restrict__ norm, T eps, T* __restrict__ gx, bool warp) {
  const Group g{warp};
  T* smem = shared_buf<T>();
  for (int64_t r = g.first(); r < rows; r += g.stride()) {
    const T* pg = gr + r * cols;
    const T* py = y + r * cols;
    T* o = gx + r * cols;
    const T nr = norm[r];
    if (!(nr >= eps && nr > T(0))) {  // the clamp is active: y = x / eps, a constant scale
      const T inv = T(1) / eps;
      for (int64_t j = g.rank(); j < cols; j += g.size()) o[j] = pg[j] * inv;
      continue;
    }
    T s = 0;
#pragma unroll 4
    for (int64_t j = g.rank(); j < cols; j += g.size()) s += pg[j] * py[j];
    s = group_reduce<SumOp<T>>(s, g, smem);
    const T inv = T(1) / nr;
#pragma unroll 4
    for (int64_t j = g.rank(); j < cols; j += g.size()) o[j] = (pg[j] - py[j] * s) * inv;
  }
}

template <class F> void dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    default: SIAM_FAIL(op, " (cuda): expects an f32 or f64 tensor");
  }
}

}  // namespace

void cross_entropy_forward(DType dtype, int64_t n, int64_t c, const void* logits, const int64_t* target,
                           double smoothing, void* loss, void* lse) {
  if (n == 0) return;
  SIAM_CHECK(c > 0, "cross_entropy (cuda): no classes");
  const RowLaunch L = row_launch(n, c);
  dispatch_float(dtype, "cross_entropy", [&](auto t0) {
    using T = decltype(t0);
    cross_entropy_fwd_kernel1<T><<<L.grid, kThreads, 0, stream()>>>(n, c, static_cast<const T*>(logits), target,
                                                                    static_cast<T>(smoothing), static_cast<T*>(loss),
                                                                    static_cast<T*>(lse), L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void cross_entropy_backward(DType dtype, int64_t n, int64_t c, const void* logits, const int64_t* target,
                            const void* lse, const void* g, double smoothing, void* dlogits) {
  if (n == 0 || c == 0) return;
  dispatch_float(dtype, "cross_entropy_backward", [&](auto t0) {
    using T = decltype(t0);
    cross_entropy_bwd_kernel1<T><<<grid_for(n * c, kThreads), kThreads, 0, stream()>>>(
        n, c, static_cast<const T*>(logits), target, static_cast<const T*>(lse), static_cast<const T*>(g),
        static_cast<T>(smoothing), static_cast<T*>(dlogits));
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void l2_normalize_forward(DType dtype, int64_t rows, int64_t cols, const void* x, double eps, void* y, void* norm) {
  if (rows == 0) return;
  const RowLaunch L = row_launch(rows, cols);
  dispatch_float(dtype, "normalize", [&](auto t0) {
    using T = decltype(t0);
    l2_normalize_fwd_kernel1<T><<<L.grid, kThreads, 0, stream()>>>(
        rows, cols, static_cast<const T*>(x), static_cast<T>(eps), static_cast<T*>(y), static_cast<T*>(norm), L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void l2_normalize_backward(DType dtype, int64_t rows, int64_t cols, const void* g, const void* y, const void* norm,
                           double eps, void* gx) {
  if (rows == 0) return;
  const RowLaunch L = row_launch(rows, cols);
  dispatch_float(dtype, "normalize_backward", [&](auto t0) {
    using T = decltype(t0);
    l2_normalize_bwd_kernel1<T><<<L.grid, kThreads, 0, stream()>>>(
        rows, cols, static_cast<const T*>(g), static_cast<const T*>(y), static_cast<const T*>(norm),
        static_cast<T>(eps), static_cast<T*>(gx), L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace siam::kernels::cuda

// The hand-written half of kernels/cuda/cudnn_norm_pool.h: batch norm's eval-mode backward and the 2-D pooling
// kernels (cuDNN's batch norm is in cudnn_norm_pool.cu). No cuDNN here, so the CUDA emulator runs this file too.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

#include "kernels/cuda/check.h"
#include "kernels/cuda/cudnn_norm_pool.h"
#include "kernels/cuda/gemm_context.h"

namespace siam::kernels::cuda {

void check_bn_type(DenseType t) {
  SIAM_CHECK(t == DenseType::f32 || t == DenseType::f64, "batch_norm: ", dense_type_name(t),
             " input on CUDA is not supported (norms run in f32: autocast keeps activations f32)");
}

namespace {

template <class T> struct Acc {
  using type = float;
};
template <> struct Acc<double> {
  using type = double;
};

template <class T> __device__ __forceinline__ typename Acc<T>::type load(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat162float(p[i]);
  else
    return p[i];
}
template <class T, class A> __device__ __forceinline__ void store(T* p, int64_t i, A v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    p[i] = __float2bfloat16_rn(static_cast<float>(v));
  else
    p[i] = static_cast<T>(v);
}

// Eval-mode backward, version 1: block c reduces channel c over M = N * L and writes gx on the way.
template <class T, class P>
__global__ void bn_eval_backward_kernel1(int64_t N, int64_t C, int64_t L, const T* __restrict__ x,
                                         const T* __restrict__ gy, const P* __restrict__ w, const P* __restrict__ rmean,
                                         const P* __restrict__ rvar, double eps, T* __restrict__ gx, P* __restrict__ gw,
                                         P* __restrict__ gb) {
  using A = typename Acc<T>::type;
  const int64_t c = blockIdx.x;
  const A invstd = static_cast<A>(1.0 / sqrt(static_cast<double>(rvar[c]) + eps));
  const A mean = static_cast<A>(rmean[c]);
  const A scale = (w ? static_cast<A>(w[c]) : A(1)) * invstd;
  A s_gy = 0, s_gyx = 0;
  const int64_t M = N * L;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    const int64_t off = (i / L) * C * L + c * L + (i % L);
    const A g = load(gy, off);
    if (gx) store(gx, off, g * scale);
    s_gy += g;
    s_gyx += g * (load(x, off) - mean) * invstd;
  }
  __shared__ A red[2][256];
  red[0][threadIdx.x] = s_gy;
  red[1][threadIdx.x] = s_gyx;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      red[0][threadIdx.x] += red[0][threadIdx.x + s];
      red[1][threadIdx.x] += red[1][threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (gb) gb[c] = static_cast<P>(red[0][0]);
    if (gw) gw[c] = static_cast<P>(red[1][0]);
  }
}

// ---------------------------------------------------------------------------------------------- pooling

#define SIAM_GRID_STRIDE(i, n)                                                                    \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <class A> __device__ __forceinline__ bool is_nan(A v) { return v != v; }

// Max pool forward, version 1: one thread per output; the first maximum of the clipped window (a NaN wins and
// stops the scan), as kernels/cpu/pool.cpp's fast path.
template <class T>
__global__ void max_pool_fwd_kernel1(Pool2dGeom g, const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx) {
  using A = typename Acc<T>::type;
  const int64_t total = g.P * g.OH * g.OW;
  SIAM_GRID_STRIDE(o, total) {
    const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH, p = o / (g.OW * g.OH);
    const int64_t h0 = max(oh * g.sh - g.ph, int64_t(0)), h1 = min(oh * g.sh - g.ph + g.kh, g.H);
    const int64_t w0 = max(ow * g.sw - g.pw, int64_t(0)), w1 = min(ow * g.sw - g.pw + g.kw, g.W);
    const T* xp = x + p * g.H * g.W;
    A best = -INFINITY;
    int64_t bi = h0 * g.W + w0;
    bool done = false;
    for (int64_t ih = h0; ih < h1 && !done; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) {
        const A v = load(xp, ih * g.W + iw);
        if (v > best || is_nan(v)) {
          best = v;
          bi = ih * g.W + iw;
          if (is_nan(v)) {
            done = true;
            break;
          }
        }
      }
    store(y, o, best);
    idx[o] = bi;
  }
}

using pool_index::adaptive_covering;
using pool_index::covering;

// Max pool backward, version 1: one thread per input element, summing gy of the windows whose maximum it is.
template <class T>
__global__ void max_pool_bwd_kernel1(Pool2dGeom g, const T* __restrict__ gy, const int64_t* __restrict__ idx,
                                     T* __restrict__ gx) {
  using A = typename Acc<T>::type;
  const int64_t total = g.P * g.H * g.W;
  SIAM_GRID_STRIDE(i, total) {
    const int64_t iw = i % g.W, ih = (i / g.W) % g.H, p = i / (g.W * g.H);
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, g.OH, oh0, oh1);
    covering(iw, g.kw, g.sw, g.pw, g.OW, ow0, ow1);
    const int64_t me = ih * g.W + iw, base = p * g.OH * g.OW;
    A s = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = base + oh * g.OW + ow;
        if (idx[o] == me) s += load(gy, o);
      }
    store(gx, i, s);
  }
}

struct AvgWin {
  int64_t h0, h1, w0, w1, div;
};
__device__ __forceinline__ AvgWin avg_win(const Pool2dGeom& g, int64_t oh, int64_t ow) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = min(h0 + g.kh, g.H + g.ph), w1 = min(w0 + g.kw, g.W + g.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = max(h0, int64_t(0)), w0 = max(w0, int64_t(0));
  h1 = min(h1, g.H), w1 = min(w1, g.W);
  const int64_t div = g.count_include_pad ? padded : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, div};
}

template <class T> __global__ void avg_pool_fwd_kernel1(Pool2dGeom g, const T* __restrict__ x, T* __restrict__ y) {
  using A = typename Acc<T>::type;
  const int64_t total = g.P * g.OH * g.OW;
  SIAM_GRID_STRIDE(o, total) {
    const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH, p = o / (g.OW * g.OH);
    const AvgWin a = avg_win(g, oh, ow);
    const T* xp = x + p * g.H * g.W;
    A s = 0;
    for (int64_t ih = a.h0; ih < a.h1; ++ih)
      for (int64_t iw = a.w0; iw < a.w1; ++iw) s += load(xp, ih * g.W + iw);
    store(y, o, s / static_cast<A>(a.div));
  }
}

template <class T> __global__ void avg_pool_bwd_kernel1(Pool2dGeom g, const T* __restrict__ gy, T* __restrict__ gx) {
  using A = typename Acc<T>::type;
  const int64_t total = g.P * g.H * g.W;
  SIAM_GRID_STRIDE(i, total) {
    const int64_t iw = i % g.W, ih = (i / g.W) % g.H, p = i / (g.W * g.H);
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, g.OH, oh0, oh1);
    covering(iw, g.kw, g.sw, g.pw, g.OW, ow0, ow1);
    const int64_t base = p * g.OH * g.OW;
    A s = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const AvgWin a = avg_win(g, oh, ow);
        if (ih >= a.h0 && ih < a.h1 && iw >= a.w0 && iw < a.w1) s += load(gy, base + oh * g.OW + ow) / static_cast<A>(a.div);
      }
    store(gx, i, s);
  }
}

using pool_index::adaptive_end;
using pool_index::adaptive_start;

template <class T>
__global__ void adaptive_avg_fwd_kernel1(Pool2dGeom g, const T* __restrict__ x, T* __restrict__ y) {
  using A = typename Acc<T>::type;
  const int64_t total = g.P * g.OH * g.OW;
  SIAM_GRID_STRIDE(o, total) {
    const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH, p = o / (g.OW * g.OH);
    const int64_t h0 = adaptive_start(oh, g.H, g.OH), h1 = adaptive_end(oh, g.H, g.OH);
    const int64_t w0 = adaptive_start(ow, g.W, g.OW), w1 = adaptive_end(ow, g.W, g.OW);
    const T* xp = x + p * g.H * g.W;
    A s = 0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) s += load(xp, ih * g.W + iw);
    store(y, o, s / static_cast<A>((h1 - h0) * (w1 - w0)));
  }
}

// Global average pool (OH = OW = 1, the ResNet head), version 1: one warp per plane, shuffle reduction.
template <class T>
__global__ void global_avg_fwd_kernel1(int64_t P, int64_t HW, const T* __restrict__ x, T* __restrict__ y) {
  using A = typename Acc<T>::type;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t p = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; p < P; p += warps) {
    const T* xp = x + p * HW;
    A s = 0;
    for (int64_t i = lane; i < HW; i += 32) s += load(xp, i);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) store(y, p, s / static_cast<A>(HW));
  }
}

template <class T>
__global__ void adaptive_avg_bwd_kernel1(Pool2dGeom g, const T* __restrict__ gy, T* __restrict__ gx) {
  using A = typename Acc<T>::type;
  const int64_t total = g.P * g.H * g.W;
  SIAM_GRID_STRIDE(i, total) {
    const int64_t iw = i % g.W, ih = (i / g.W) % g.H, p = i / (g.W * g.H);
    int64_t oh0, oh1, ow0, ow1;
    adaptive_covering(ih, g.H, g.OH, oh0, oh1);
    adaptive_covering(iw, g.W, g.OW, ow0, ow1);
    const int64_t base = p * g.OH * g.OW;
    A s = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const int64_t h0 = adaptive_start(oh, g.H, g.OH), h1 = adaptive_end(oh, g.H, g.OH);
      if (ih < h0 || ih >= h1) continue;
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t w0 = adaptive_start(ow, g.W, g.OW), w1 = adaptive_end(ow, g.W, g.OW);
        if (iw < w0 || iw >= w1) continue;
        s += load(gy, base + oh * g.OW + ow) / static_cast<A>((h1 - h0) * (w1 - w0));
      }
    }
    store(gx, i, s);
  }
}

#undef SIAM_GRID_STRIDE

// Runs body.template operator()<T>() with T the element type of t.
template <class F> void dispatch(DenseType t, F&& body) {
  switch (t) {
    case DenseType::f32: return body(float{});
    case DenseType::f64: return body(double{});
    case DenseType::bf16: return body(__nv_bfloat16{});
  }
}

}  // namespace

void batch_norm_eval_backward(int64_t N, int64_t C, int64_t L, DenseType t, int device, const void* x, const void* gy,
                              const void* w, const void* running_mean, const void* running_var, double eps, void* gx,
                              void* gw, void* gb) {
  check_bn_type(t);
  if (C == 0) return;
  use_device(device);
  cudaStream_t st = dense_stream(device);
  if (t == DenseType::f64) {
    bn_eval_backward_kernel1<double, double><<<static_cast<unsigned>(C), 256, 0, st>>>(
        N, C, L, static_cast<const double*>(x), static_cast<const double*>(gy), static_cast<const double*>(w),
        static_cast<const double*>(running_mean), static_cast<const double*>(running_var), eps,
        static_cast<double*>(gx), static_cast<double*>(gw), static_cast<double*>(gb));
  } else {
    bn_eval_backward_kernel1<float, float><<<static_cast<unsigned>(C), 256, 0, st>>>(
        N, C, L, static_cast<const float*>(x), static_cast<const float*>(gy), static_cast<const float*>(w),
        static_cast<const float*>(running_mean), static_cast<const float*>(running_var), eps, static_cast<float*>(gx),
        static_cast<float*>(gw), static_cast<float*>(gb));
  }
  SIAM_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------------------------------------- pooling

void max_pool2d_forward(const Pool2dGeom& g, DenseType t, int device, const void* x, void* y, int64_t* idx) {
  const int64_t n = g.P * g.OH * g.OW;
  if (n == 0) return;
  use_device(device);
  dispatch(t, [&](auto zero) {
    using T = decltype(zero);
    max_pool_fwd_kernel1<T><<<blocks_for(n), 256, 0, dense_stream(device)>>>(g, static_cast<const T*>(x),
                                                                              static_cast<T*>(y), idx);
  });
  SIAM_CUDA_LAUNCH_CHECK();
}

void max_pool2d_backward(const Pool2dGeom& g, DenseType t, int device, const void* gy, const int64_t* idx, void* gx) {
  const int64_t n = g.P * g.H * g.W;
  if (n == 0) return;
  use_device(device);
  dispatch(t, [&](auto zero) {
    using T = decltype(zero);
    max_pool_bwd_kernel1<T><<<blocks_for(n), 256, 0, dense_stream(device)>>>(g, static_cast<const T*>(gy), idx,
                                                                              static_cast<T*>(gx));
  });
  SIAM_CUDA_LAUNCH_CHECK();
}

void avg_pool2d_forward(const Pool2dGeom& g, DenseType t, int device, const void* x, void* y) {
  const int64_t n = g.P * g.OH * g.OW;
  if (n == 0) return;
  use_device(device);
  dispatch(t, [&](auto zero) {
    using T = decltype(zero);
    avg_pool_fwd_kernel1<T><<<blocks_for(n), 256, 0, dense_stream(device)>>>(g, static_cast<const T*>(x),
                                                                              static_cast<T*>(y));
  });
  SIAM_CUDA_LAUNCH_CHECK();
}

void avg_pool2d_backward(const Pool2dGeom& g, DenseType t, int device, const void* gy, void* gx) {
  const int64_t n = g.P * g.H * g.W;
  if (n == 0) return;
  use_device(device);
  dispatch(t, [&](auto zero) {
    using T = decltype(zero);
    avg_pool_bwd_kernel1<T><<<blocks_for(n), 256, 0, dense_stream(device)>>>(g, static_cast<const T*>(gy),
                                                                              static_cast<T*>(gx));
  });
  SIAM_CUDA_LAUNCH_CHECK();
}

void adaptive_avg_pool2d_forward(const Pool2dGeom& g, DenseType t, int device, const void* x, void* y) {
  const int64_t n = g.P * g.OH * g.OW;
  if (n == 0) return;
  use_device(device);
  dispatch(t, [&](auto zero) {
    using T = decltype(zero);
    if (g.OH == 1 && g.OW == 1)
      global_avg_fwd_kernel1<T><<<blocks_for(g.P * 32), 256, 0, dense_stream(device)>>>(
          g.P, g.H * g.W, static_cast<const T*>(x), static_cast<T*>(y));
    else
      adaptive_avg_fwd_kernel1<T><<<blocks_for(n), 256, 0, dense_stream(device)>>>(g, static_cast<const T*>(x),
                                                                                   static_cast<T*>(y));
  });
  SIAM_CUDA_LAUNCH_CHECK();
}

void adaptive_avg_pool2d_backward(const Pool2dGeom& g, DenseType t, int device, const void* gy, void* gx) {
  const int64_t n = g.P * g.H * g.W;
  if (n == 0) return;
  use_device(device);
  dispatch(t, [&](auto zero) {
    using T = decltype(zero);
    adaptive_avg_bwd_kernel1<T><<<blocks_for(n), 256, 0, dense_stream(device)>>>(g, static_cast<const T*>(gy),
                                                                                 static_cast<T*>(gx));
  });
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace siam::kernels::cuda
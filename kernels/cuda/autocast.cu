// Casts of the autocast path (contract in kernels/cuda/autocast.h).
#include <cuda_bf16.h>

#include <type_traits>

#include "kernels/cuda/autocast.h"
#include "kernels/cuda/gemm_context.h"

namespace siam::kernels::cuda {

namespace {

struct StridedView {
  int ndim;
  int64_t shape[kCastMaxDims];
  int64_t strides[kCastMaxDims];
};

template <class T> __device__ __forceinline__ float to_float(T v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class D, class S> __device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<D, __nv_bfloat16>) {
    if constexpr (std::is_same_v<S, double>)
      return __double2bfloat16(v);
    else
      return __float2bfloat16_rn(to_float(v));
  } else if constexpr (std::is_same_v<S, __nv_bfloat16>) {
    return static_cast<D>(__bfloat162float(v));
  } else {
    return static_cast<D>(v);
  }
}

// Version 1: one thread per output element, grid-stride; the source offset from the row-major index.
template <class S, class D>
__global__ void cast_strided_kernel1(const S* __restrict__ src, StridedView v, D* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t rem = i, off = 0;
    for (int d = v.ndim - 1; d >= 0; --d) {
      const int64_t c = rem % v.shape[d];
      rem /= v.shape[d];
      off += c * v.strides[d];
    }
    dst[i] = convert<D>(src[off]);
  }
}

template <class S, class D> __global__ void cast_contiguous_kernel1(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = convert<D>(src[i]);
}

// y[n, k, l] = float(x[n, k, l]) + bias[k]; two elements per thread when L is even (bf16x2 loads).
__global__ void widen_bias_kernel1(const __nv_bfloat16* __restrict__ x, const float* __restrict__ bias,
                                   float* __restrict__ y, int64_t total, int64_t K, int64_t L) {
  if ((L & 1) == 0) {
    const int64_t pairs = total / 2;
    const __nv_bfloat162* x2 = reinterpret_cast<const __nv_bfloat162*>(x);
    float2* y2 = reinterpret_cast<float2*>(y);
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pairs;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const float b = bias ? bias[((2 * i) / L) % K] : 0.f;
      const float2 f = __bfloat1622float2(x2[i]);
      y2[i] = make_float2(f.x + b, f.y + b);
    }
    return;
  }
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = __bfloat162float(x[i]) + (bias ? bias[(i / L) % K] : 0.f);
}

template <class S, class D>
void launch_cast(const void* src, const StridedView& v, bool contiguous, void* dst, int64_t n, cudaStream_t s) {
  if (contiguous)
    cast_contiguous_kernel1<S, D><<<blocks_for(n), 256, 0, s>>>(static_cast<const S*>(src), static_cast<D*>(dst), n);
  else
    cast_strided_kernel1<S, D><<<blocks_for(n), 256, 0, s>>>(static_cast<const S*>(src), v, static_cast<D*>(dst), n);
  SIAM_CUDA_LAUNCH_CHECK();
}

template <class S>
void launch_cast_from(DenseType dt, const void* src, const StridedView& v, bool contiguous, void* dst, int64_t n,
                      cudaStream_t s) {
  switch (dt) {
    case DenseType::f32: return launch_cast<S, float>(src, v, contiguous, dst, n, s);
    case DenseType::f64: return launch_cast<S, double>(src, v, contiguous, dst, n, s);
    case DenseType::bf16: return launch_cast<S, __nv_bfloat16>(src, v, contiguous, dst, n, s);
  }
}

}  // namespace

void cast_strided(int device, DenseType st, const void* src, int ndim, const int64_t* shape, const int64_t* strides,
                  DenseType dt, void* dst) {
  SIAM_CHECK(ndim >= 0 && ndim <= kCastMaxDims, "cuda cast: at most ", kCastMaxDims, " dims, got ", ndim);
  StridedView v{};
  v.ndim = ndim;
  int64_t n = 1, expected = 1;
  bool contiguous = true;
  for (int d = ndim - 1; d >= 0; --d) {
    v.shape[d] = shape[d];
    v.strides[d] = strides[d];
    if (shape[d] != 1 && strides[d] != expected) contiguous = false;
    expected *= shape[d];
    n *= shape[d];
  }
  if (n == 0) return;
  use_device(device);
  cudaStream_t s = dense_stream(device);
  switch (st) {
    case DenseType::f32: return launch_cast_from<float>(dt, src, v, contiguous, dst, n, s);
    case DenseType::f64: return launch_cast_from<double>(dt, src, v, contiguous, dst, n, s);
    case DenseType::bf16: return launch_cast_from<__nv_bfloat16>(dt, src, v, contiguous, dst, n, s);
  }
}

void widen_bias_bf16_nchw(int device, const void* x, const float* bias, float* y, int64_t N, int64_t K, int64_t L) {
  const int64_t total = N * K * L;
  if (total == 0) return;
  use_device(device);
  widen_bias_kernel1<<<blocks_for((L & 1) == 0 ? total / 2 : total), 256, 0, dense_stream(device)>>>(
      static_cast<const __nv_bfloat16*>(x), bias, y, total, K, L);
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace siam::kernels::cuda

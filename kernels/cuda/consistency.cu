// BYOL / SimSiam's normalized MSE on CUDA (versions in consistency.h; arithmetic in kernels/common/nmse_math.h).
#include <cuda_runtime.h>

#include "kernels/common/nmse_math.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/consistency.h"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

cudaStream_t stream() { return static_cast<cudaStream_t>(siam::cuda::current_stream()); }

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    nmse_rows_kernel1(int64_t n, int64_t d, const T* __restrict__ p, const T* __restrict__ z, T* __restrict__ stats,
                      double* __restrict__ row_loss) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); i < n; i += warps) {
    const T* pi = p + i * d;
    const T* zi = z + i * d;
    double pp = 0, zz = 0, pz = 0;
    for (int64_t j = lane; j < d; j += 32) {
      const double a = static_cast<double>(pi[j]), b = static_cast<double>(zi[j]);
      pp += a * a;
      zz += b * b;
      pz += a * b;
    }
    pp = warp_sum(pp);
    zz = warp_sum(zz);
    pz = warp_sum(pz);
    if (lane == 0) {
      const double c = nmse_cos(pp, zz, pz);
      stats[3 * i] = static_cast<T>(sqrt(pp));
      stats[3 * i + 1] = static_cast<T>(sqrt(zz));
      stats[3 * i + 2] = static_cast<T>(c);
      row_loss[i] = 2.0 - 2.0 * c;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) nmse_mean_kernel1(int64_t n, const double* __restrict__ row_loss, T* loss) {
  __shared__ double part[kThreads];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) s += row_loss[i];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) loss[0] = static_cast<T>(part[0] / static_cast<double>(n));
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    nmse_backward_kernel1(int64_t n, int64_t d, const T* __restrict__ grad, const T* __restrict__ p,
                          const T* __restrict__ z, const T* __restrict__ stats, T* __restrict__ dp,
                          T* __restrict__ dz) {
  const int lane = threadIdx.x & 31;
  const double coef = -2.0 * static_cast<double>(grad[0]) / static_cast<double>(n);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); i < n; i += warps) {
    const NmseCoefs k = nmse_coefs(coef, static_cast<double>(stats[3 * i]), static_cast<double>(stats[3 * i + 1]),
                                   static_cast<double>(stats[3 * i + 2]));
    const T a = static_cast<T>(k.a), bp = static_cast<T>(k.bp), bz = static_cast<T>(k.bz);
    const T* pi = p + i * d;
    const T* zi = z + i * d;
    for (int64_t j = lane; j < d; j += 32) {
      const T pv = pi[j], zv = zi[j];
      if (dp) dp[i * d + j] = a * zv - bp * pv;
      if (dz) dz[i * d + j] = a * pv - bz * zv;
    }
  }
}

unsigned warp_row_blocks(int64_t n) {
  const int64_t b = (n + kWarps - 1) / kWarps;
  return static_cast<unsigned>(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

void check_args(const char* op, DType dt, int64_t n, int64_t d) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, " (cuda): expects f32 or f64, got ", dtype_name(dt));
  SIAM_CHECK(n >= 1 && d >= 1, op, " (cuda): needs n >= 1 and d >= 1, got ", n, " x ", d);
}

}  // namespace

void nmse_forward(DType dt, int64_t n, int64_t d, const void* p, const void* z, void* stats, double* row_loss,
                  void* loss) {
  check_args("nmse_forward", dt, n, d);
  if (dt == DType::f32) {
    nmse_rows_kernel1<float><<<warp_row_blocks(n), kThreads, 0, stream()>>>(
        n, d, static_cast<const float*>(p), static_cast<const float*>(z), static_cast<float*>(stats), row_loss);
    SIAM_CUDA_LAUNCH_CHECK();
    nmse_mean_kernel1<float><<<1, kThreads, 0, stream()>>>(n, row_loss, static_cast<float*>(loss));
  } else {
    nmse_rows_kernel1<double><<<warp_row_blocks(n), kThreads, 0, stream()>>>(
        n, d, static_cast<const double*>(p), static_cast<const double*>(z), static_cast<double*>(stats), row_loss);
    SIAM_CUDA_LAUNCH_CHECK();
    nmse_mean_kernel1<double><<<1, kThreads, 0, stream()>>>(n, row_loss, static_cast<double*>(loss));
  }
  SIAM_CUDA_LAUNCH_CHECK();
}

void nmse_backward(DType dt, int64_t n, int64_t d, const void* grad, const void* p, const void* z, const void* stats,
                   void* dp, void* dz) {
  check_args("nmse_backward", dt, n, d);
  if (dt == DType::f32)
    nmse_backward_kernel1<float><<<warp_row_blocks(n), kThreads, 0, stream()>>>(
        n, d, static_cast<const float*>(grad), static_cast<const float*>(p), static_cast<const float*>(z),
        static_cast<const float*>(stats), static_cast<float*>(dp), static_cast<float*>(dz));
  else
    nmse_backward_kernel1<double><<<warp_row_blocks(n), kThreads, 0, stream()>>>(
        n, d, static_cast<const double*>(grad), static_cast<const double*>(p), static_cast<const double*>(z),
        static_cast<const double*>(stats), static_cast<double*>(dp), static_cast<double*>(dz));
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace siam::kernels::cuda

// SyncBatchNorm's kernels on CUDA (steps and versions in sync_batchnorm.h; arithmetic in
// kernels/common/sync_bn_math.h, shared with the CPU path).
#include <cuda_runtime.h>

#include <algorithm>

#include "engine/core/error.h"
#include "kernels/common/sync_bn_math.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/rowwise.cuh"
#include "kernels/cuda/sync_batchnorm.h"

namespace siam::kernels::cuda {

namespace {

using rowwise::kThreads;
using rowwise::stream;

__device__ __forceinline__ double block_total(double v) {
  return rowwise::group_reduce<rowwise::SumOp<double>>(v, rowwise::Group{false}, rowwise::shared_buf<double>());
}

// Element k of channel c's N L values: sample k / L, position k % L.
__device__ __forceinline__ int64_t at(int64_t C, int64_t L, int64_t c, int64_t k) {
  return ((k / L) * C + c) * L + k % L;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    sync_bn_moments_kernel1(int64_t N, int64_t C, int64_t L, const T* __restrict__ x, double* __restrict__ rec) {
  const int64_t c = blockIdx.x, M = N * L;
  double s = 0;
  for (int64_t k = threadIdx.x; k < M; k += kThreads) s += static_cast<double>(x[at(C, L, c, k)]);
  const double m = M > 0 ? block_total(s) / static_cast<double>(M) : 0.0;
  double q = 0;
  for (int64_t k = threadIdx.x; k < M; k += kThreads) {
    const double d = static_cast<double>(x[at(C, L, c, k)]) - m;
    q += d * d;
  }
  q = block_total(q);
  if (threadIdx.x == 0) {
    if (c == 0) rec[0] = static_cast<double>(M);
    rec[1 + c] = m;
    rec[1 + C + c] = q;
  }
}

template <class T>
__global__ void sync_bn_merge_kernel1(int world, int64_t C, const double* __restrict__ all, double eps, double momentum,
                                      T* __restrict__ rm, T* __restrict__ rv, double* __restrict__ mean,
                                      double* __restrict__ invstd, double* __restrict__ count) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const double n = kernels::sync_bn_count(all, world, C);
  double m = 0, v = 0;
  kernels::sync_bn_merge(all, world, C, c, n, m, v);
  mean[c] = m;
  invstd[c] = 1.0 / sqrt(v + eps);
  if (c == 0) *count = n;
  // as the CPU: running = (1 - momentum) running + momentum stat in double, the variance unbiased. Not with one
  // value or none in all (the host then throws, and the CPU leaves the running statistics as they were).
  if (n <= 1) return;
  if (rm) rm[c] = static_cast<T>(kernels::sync_bn_running(static_cast<double>(rm[c]), m, momentum));
  if (rv)
    rv[c] = static_cast<T>(kernels::sync_bn_running(static_cast<double>(rv[c]), v * (n / (n - 1)), momentum));
}

template <class T>
__global__ void sync_bn_apply_kernel1(int64_t total, int64_t C, int64_t L, const T* __restrict__ x,
                                      const double* __restrict__ mean, const double* __restrict__ invstd,
                                      const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / L) % C;
    // the CPU rounds mean and invstd to T first, then forms sc and sh in T
    const T sc = static_cast<T>(invstd[c]) * (w ? w[c] : T(1));
    const T sh = (b ? b[c] : T(0)) - static_cast<T>(mean[c]) * sc;
    y[i] = x[i] * sc + sh;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    sync_bn_grad_sums_kernel1(int64_t N, int64_t C, int64_t L, const T* __restrict__ x, const T* __restrict__ gy,
                              const double* __restrict__ mean, const double* __restrict__ invstd,
                              double* __restrict__ sums, T* __restrict__ gw, T* __restrict__ gb) {
  const int64_t c = blockIdx.x, M = N * L;
  const double m = mean[c], is = invstd[c];
  double sg = 0, sgx = 0;
  for (int64_t k = threadIdx.x; k < M; k += kThreads) {
    const int64_t i = at(C, L, c, k);
    const double g = static_cast<double>(gy[i]);
    sg += g;
    sgx += g * (static_cast<double>(x[i]) - m) * is;
  }
  sg = block_total(sg);
  sgx = block_total(sgx);
  if (threadIdx.x == 0) {
    sums[c] = sg;
    sums[C + c] = sgx;
    if (gb) gb[c] = static_cast<T>(sg);
    if (gw) gw[c] = static_cast<T>(sgx);
  }
}

template <class T>
__global__ void sync_bn_input_grad_kernel1(int64_t total, int64_t C, int64_t L, const T* __restrict__ x,
                                           const T* __restrict__ gy, const double* __restrict__ mean,
                                           const double* __restrict__ invstd, const T* __restrict__ w,
                                           const double* __restrict__ sums, const double* __restrict__ count,
                                           T* __restrict__ gx) {
  const double n = *count;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / L) % C;
    const double scale = (w ? static_cast<double>(w[c]) : 1.0) * invstd[c];
    gx[i] = static_cast<T>(kernels::sync_bn_input_grad(static_cast<double>(gy[i]), static_cast<double>(x[i]), mean[c],
                                                       invstd[c], scale, sums[c] / n, sums[C + c] / n));
  }
}

void check_args(const char* op, DType dt, int64_t N, int64_t C, int64_t L) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, " (cuda): expects f32 or f64, got ", dtype_name(dt));
  SIAM_CHECK(N >= 0 && C >= 1 && C <= 2147483647 && L >= 1, op, " (cuda): bad shape (N, C, L) = (", N, ", ", C, ", ", L,
             ")");
}

unsigned elementwise_blocks(int64_t total) {
  return static_cast<unsigned>(std::clamp<int64_t>((total + kThreads - 1) / kThreads, 1, 65535 * 8));
}

}  // namespace

void sync_bn_moments(DType dt, int64_t N, int64_t C, int64_t L, const void* x, double* record) {
  check_args("sync_bn_moments", dt, N, C, L);
  const auto grid = static_cast<unsigned>(C);
  if (dt == DType::f32)
    sync_bn_moments_kernel1<float><<<grid, kThreads, 0, stream()>>>(N, C, L, static_cast<const float*>(x), record);
  else
    sync_bn_moments_kernel1<double><<<grid, kThreads, 0, stream()>>>(N, C, L, static_cast<const double*>(x), record);
  SIAM_CUDA_LAUNCH_CHECK();
}

void sync_bn_merge(DType dt, int world, int64_t C, const double* all, double eps, double momentum, void* running_mean,
                   void* running_var, double* mean, double* invstd, double* count) {
  check_args("sync_bn_merge", dt, 1, C, 1);
  SIAM_CHECK(world >= 1, "sync_bn_merge (cuda): world size must be >= 1, got ", world);
  const auto grid = static_cast<unsigned>((C + kThreads - 1) / kThreads);
  if (dt == DType::f32)
    sync_bn_merge_kernel1<float>
        <<<grid, kThreads, 0, stream()>>>(world, C, all, eps, momentum, static_cast<float*>(running_mean),
                                          static_cast<float*>(running_var), mean, invstd, count);
  else
    sync_bn_merge_kernel1<double>
        <<<grid, kThreads, 0, stream()>>>(world, C, all, eps, momentum, static_cast<double*>(running_mean),
                                          static_cast<double*>(running_var), mean, invstd, count);
  SIAM_CUDA_LAUNCH_CHECK();
}

void sync_bn_apply(DType dt, int64_t N, int64_t C, int64_t L, const void* x, const double* mean, const double* invstd,
                   const void* w, const void* b, void* y) {
  check_args("sync_bn_apply", dt, N, C, L);
  const int64_t total = N * C * L;
  if (total == 0) return;
  const unsigned grid = elementwise_blocks(total);
  if (dt == DType::f32)
    sync_bn_apply_kernel1<float><<<grid, kThreads, 0, stream()>>>(total, C, L, static_cast<const float*>(x), mean,
                                                                  invstd, static_cast<const float*>(w),
                                                                  static_cast<const float*>(b), static_cast<float*>(y));
  else
    sync_bn_apply_kernel1<double><<<grid, kThreads, 0, stream()>>>(
        total, C, L, static_cast<const double*>(x), mean, invstd, static_cast<const double*>(w),
        static_cast<const double*>(b), static_cast<double*>(y));
  SIAM_CUDA_LAUNCH_CHECK();
}

void sync_bn_grad_sums(DType dt, int64_t N, int64_t C, int64_t L, const void* x, const void* gy, const double* mean,
                       const double* invstd, double* sums, void* gw, void* gb) {
  check_args("sync_bn_grad_sums", dt, N, C, L);
  const auto grid = static_cast<unsigned>(C);
  if (dt == DType::f32)
    sync_bn_grad_sums_kernel1<float><<<grid, kThreads, 0, stream()>>>(N, C, L, static_cast<const float*>(x),
                                                                      static_cast<const float*>(gy), mean, invstd, sums,
                                                                      static_cast<float*>(gw), static_cast<float*>(gb));
  else
    sync_bn_grad_sums_kernel1<double>
        <<<grid, kThreads, 0, stream()>>>(N, C, L, static_cast<const double*>(x), static_cast<const double*>(gy), mean,
                                          invstd, sums, static_cast<double*>(gw), static_cast<double*>(gb));
  SIAM_CUDA_LAUNCH_CHECK();
}

void sync_bn_input_grad(DType dt, int64_t N, int64_t C, int64_t L, const void* x, const void* gy, const double* mean,
                        const double* invstd, const void* w, const double* sums, const double* count, void* gx) {
  check_args("sync_bn_input_grad", dt, N, C, L);
  const int64_t total = N * C * L;
  if (total == 0) return;
  const unsigned grid = elementwise_blocks(total);
  if (dt == DType::f32)
    sync_bn_input_grad_kernel1<float><<<grid, kThreads, 0, stream()>>>(
        total, C, L, static_cast<const float*>(x), static_cast<const float*>(gy), mean, invstd,
        static_cast<const float*>(w), sums, count, static_cast<float*>(gx));
  else
    sync_bn_input_grad_kernel1<double><<<grid, kThreads, 0, stream()>>>(
        total, C, L, static_cast<const double*>(x), static_cast<const double*>(gy), mean, invstd,
        static_cast<const double*>(w), sums, count, static_cast<double*>(gx));
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace siam::kernels::cuda

// Barlow Twins cross-correlation on CUDA (steps and versions in xcorr.h; arithmetic in
// kernels/common/xcorr_math.h, shared with the CPU path).
#include <cuda_runtime.h>

#include "kernels/common/xcorr_math.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/rowwise.cuh"
#include "kernels/cuda/xcorr.h"

namespace siam::kernels::cuda {

namespace {

constexpr int kCols = 32;      // columns per block of the column kernels (a warp reads 32 consecutive features)
constexpr int kGroups = 8;     // row groups per block of the column kernels
using rowwise::kThreads;  // threads of the row / sum / element-wise kernels
using rowwise::stream;

unsigned column_blocks(int64_t d) { return static_cast<unsigned>((d + kCols - 1) / kCols); }

// The sum over the kGroups row groups of column tx, in group order (every thread of the column gets it).
// red: shared (kGroups, kCols + 1). Ends synchronized, so red can be reused.
__device__ __forceinline__ double column_total(double (*red)[kCols + 1], double v) {
  red[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  double s = 0;
#pragma unroll
  for (int k = 0; k < kGroups; ++k) s += red[k][threadIdx.x];
  __syncthreads();
  return s;
}

template <class T>
__global__ void __launch_bounds__(kCols* kGroups)
    xcorr_standardize_kernel1(int64_t n, int64_t d, const T* __restrict__ x, double eps, T* __restrict__ zh,
                              T* __restrict__ rstd) {
  __shared__ double red[kGroups][kCols + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  const bool in = c < d;
  double s = 0;
  if (in)
    for (int64_t r = threadIdx.y; r < n; r += kGroups) s += static_cast<double>(x[r * d + c]);
  const double mean = column_total(red, s) / static_cast<double>(n);
  double v = 0;
  if (in)
    for (int64_t r = threadIdx.y; r < n; r += kGroups) {
      const double dv = static_cast<double>(x[r * d + c]) - mean;
      v += dv * dv;
    }
  const double var_sum = column_total(red, v);
  if (!in) return;
  const T rs = static_cast<T>(xcorr_rstd(var_sum, n, eps)), mu = static_cast<T>(mean);
  if (threadIdx.y == 0) rstd[c] = rs;
  for (int64_t r = threadIdx.y; r < n; r += kGroups) zh[r * d + c] = (x[r * d + c] - mu) * rs;
}

template <class T>
__global__ void __launch_bounds__(kCols* kGroups)
    xcorr_standardize_backward_kernel1(int64_t n, int64_t d, const T* __restrict__ zh, const T* __restrict__ rstd,
                                       T* __restrict__ g) {
  __shared__ double red[kGroups][kCols + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  const bool in = c < d;
  double sg = 0, sgz = 0;
  if (in)
    for (int64_t r = threadIdx.y; r < n; r += kGroups) {
      const double gv = static_cast<double>(g[r * d + c]);
      sg += gv;
      sgz += gv * static_cast<double>(zh[r * d + c]);
    }
  const T mean_g = static_cast<T>(column_total(red, sg) / static_cast<double>(n));
  const T mean_gz = static_cast<T>(column_total(red, sgz) / static_cast<double>(n));
  if (!in) return;
  const T rs = rstd[c];
  for (int64_t r = threadIdx.y; r < n; r += kGroups)
    g[r * d + c] = xcorr_standardize_grad(g[r * d + c], zh[r * d + c], mean_g, mean_gz, rs);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    xcorr_row_loss_kernel1(int64_t d, double lambda, const T* __restrict__ c, double* __restrict__ rows) {
  const int64_t i = blockIdx.x;
  const T* ci = c + i * d;
  double s = 0;
  for (int64_t j = threadIdx.x; j < d; j += kThreads) {
    const double v = static_cast<double>(ci[j]);
    s += v * v;
  }
  const double total = rowwise::group_reduce<rowwise::SumOp<double>>(s, rowwise::Group{false},
                                                                    rowwise::shared_buf<double>());
  if (threadIdx.x == 0) rows[i] = xcorr_row_loss(total, static_cast<double>(ci[i]), lambda);
}

template <class T>
__global__ void __launch_bounds__(kThreads) xcorr_sum_kernel1(int64_t d, const double* __restrict__ rows, T* loss) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) s += rows[i];
  const double total = rowwise::group_reduce<rowwise::SumOp<double>>(s, rowwise::Group{false},
                                                                    rowwise::shared_buf<double>());
  if (threadIdx.x == 0) loss[0] = static_cast<T>(total);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    xcorr_dc_kernel1(int64_t d, T two_lambda, const T* __restrict__ grad, const T* __restrict__ c, T* __restrict__ dc) {
  const T g = grad[0], on = T(2) * g, off = two_lambda * g;
  const int64_t total = d * d, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride)
    dc[e] = siam::kernels::xcorr_dc(c[e], e / d == e % d, on, off);
}

unsigned elementwise_blocks(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

void check_dtype(const char* op, DType dt) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, " (cuda): expects f32 or f64, got ", dtype_name(dt));
}

}  // namespace

void xcorr_standardize(DType dt, int64_t n, int64_t d, const void* x, double eps, void* zh, void* rstd) {
  check_dtype("xcorr_standardize", dt);
  SIAM_CHECK(n >= 1 && d >= 1, "xcorr_standardize (cuda): needs n >= 1 and d >= 1, got ", n, " x ", d);
  const dim3 block(kCols, kGroups);
  if (dt == DType::f32)
    xcorr_standardize_kernel1<float><<<column_blocks(d), block, 0, stream()>>>(
        n, d, static_cast<const float*>(x), eps, static_cast<float*>(zh), static_cast<float*>(rstd));
  else
    xcorr_standardize_kernel1<double><<<column_blocks(d), block, 0, stream()>>>(
        n, d, static_cast<const double*>(x), eps, static_cast<double*>(zh), static_cast<double*>(rstd));
  SIAM_CUDA_LAUNCH_CHECK();
}

void xcorr_loss(DType dt, int64_t d, double lambda, const void* c, double* row_partials, void* loss) {
  check_dtype("xcorr_loss", dt);
  SIAM_CHECK(d >= 1 && d <= 2147483647, "xcorr_loss (cuda): d must be in [1, 2^31), got ", d);
  const unsigned rows = static_cast<unsigned>(d);
  if (dt == DType::f32) {
    xcorr_row_loss_kernel1<float><<<rows, kThreads, 0, stream()>>>(d, lambda, static_cast<const float*>(c),
                                                                    row_partials);
    SIAM_CUDA_LAUNCH_CHECK();
    xcorr_sum_kernel1<float><<<1, kThreads, 0, stream()>>>(d, row_partials, static_cast<float*>(loss));
  } else {
    xcorr_row_loss_kernel1<double><<<rows, kThreads, 0, stream()>>>(d, lambda, static_cast<const double*>(c),
                                                                     row_partials);
    SIAM_CUDA_LAUNCH_CHECK();
    xcorr_sum_kernel1<double><<<1, kThreads, 0, stream()>>>(d, row_partials, static_cast<double*>(loss));
  }
  SIAM_CUDA_LAUNCH_CHECK();
}

void xcorr_dc(DType dt, int64_t d, double lambda, const void* grad, const void* c, void* dc) {
  check_dtype("xcorr_dc", dt);
  const unsigned blocks = elementwise_blocks(d * d);
  if (dt == DType::f32)
    xcorr_dc_kernel1<float><<<blocks, kThreads, 0, stream()>>>(d, static_cast<float>(2.0 * lambda),
                                                               static_cast<const float*>(grad),
                                                               static_cast<const float*>(c), static_cast<float*>(dc));
  else
    xcorr_dc_kernel1<double><<<blocks, kThreads, 0, stream()>>>(d, 2.0 * lambda, static_cast<const double*>(grad),
                                                                static_cast<const double*>(c),
                                                                static_cast<double*>(dc));
  SIAM_CUDA_LAUNCH_CHECK();
}

void xcorr_standardize_backward(DType dt, int64_t n, int64_t d, const void* zh, const void* rstd, void* g) {
  check_dtype("xcorr_standardize_backward", dt);
  const dim3 block(kCols, kGroups);
  if (dt == DType::f32)
    xcorr_standardize_backward_kernel1<float><<<column_blocks(d), block, 0, stream()>>>(
        n, d, static_cast<const float*>(zh), static_cast<const float*>(rstd), static_cast<float*>(g));
  else
    xcorr_standardize_backward_kernel1<double><<<column_blocks(d), block, 0, stream()>>>(
        n, d, static_cast<const double*>(zh), static_cast<const double*>(rstd), static_cast<double*>(g));
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace siam::kernels::cuda

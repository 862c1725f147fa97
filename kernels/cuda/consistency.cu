// BYOL / SimSiam's normalized MSE on CUDA (versions in consistency.h; arithmetic in kernels/common/nmse_math.h).
#include <cuda_runtime.h>

#include "kernels/common/nmse_math.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/consistency.h"
#include "kernels/cuda/rowwise.cuh"

namespace siam::kernels::cuda {

namespace {

using rowwise::Group;
using rowwise::group_reduce;
using rowwise::kThreads;
using rowwise::shared_buf;
using rowwise::stream;
using rowwise::SumOp;

// A group of threads per row (rowwise::Group: a warp, or the block for rows longer than kWarpRowMax).
template <class T>
__global__ void __launch_bounds__(kThreads)
    nmse_rows_kernel1(int64_t n, int64_t d, const T* __restrict__ p, const T* __restrict__ z, T* __restrict__ stats,
                      double* __restrict__ row_loss, bool warp) {
  const Group g{warp};
  double* smem = shared_buf<double>();
  for (int64_t i = g.first(); i < n; i += g.stride()) {
    const T* pi = p + i * d;
    const T* zi = z + i * d;
    double pp = 0, zz = 0, pz = 0;
    for (int64_t j = g.rank(); j < d; j += g.size()) {
      const double a = static_cast<double>(pi[j]), b = static_cast<double>(zi[j]);
      pp += a * a;
      zz += b * b;
      pz += a * b;
    }
    pp = group_reduce<SumOp<double>>(pp, g, smem);
    zz = group_reduce<SumOp<double>>(zz, g, smem);
    pz = group_reduce<SumOp<double>>(pz, g, smem);
    if (g.rank() == 0) {
      const double c = nmse_cos(pp, zz, pz);
      stats[3 * i] = static_cast<T>(sqrt(pp));
      stats[3 * i + 1] = static_cast<T>(sqrt(zz));
      stats[3 * i + 2] = static_cast<T>(c);
      row_loss[i] = 2.0 - 2.0 * c;
    }
  }
}

// One block: loss[0] = mean of the row losses, combined in a fixed order.
template <class T>
__global__ void __launch_bounds__(kThreads) nmse_mean_kernel1(int64_t n, const double* __restrict__ row_loss, T* loss) {
  const double s = rowwise::block_sum(row_loss, n);
  if (threadIdx.x == 0) loss[0] = static_cast<T>(s / static_cast<double>(n));
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    nmse_backward_kernel1(int64_t n, int64_t d, const T* __restrict__ grad, const T* __restrict__ p,
                          const T* __restrict__ z, const T* __restrict__ stats, T* __restrict__ dp,
                          T* __restrict__ dz, bool warp) {
  const Group g{warp};
  const double coef = -2.0 * static_cast<double>(grad[0]) / static_cast<double>(n);
  for (int64_t i = g.first(); i < n; i += g.stride()) {
    const NmseCoefs k = nmse_coefs(coef, static_cast<double>(stats[3 * i]), static_cast<double>(stats[3 * i + 1]),
                                   static_cast<double>(stats[3 * i + 2]));
    const T a = static_cast<T>(k.a), bp = static_cast<T>(k.bp), bz = static_cast<T>(k.bz);
    const T* pi = p + i * d;
    const T* zi = z + i * d;
    for (int64_t j = g.rank(); j < d; j += g.size()) {
      const T pv = pi[j], zv = zi[j];
      if (dp) dp[i * d + j] = a * zv - bp * pv;
      if (dz) dz[i * d + j] = a * pv - bz * zv;
    }
  }
}

void check_args(const char* op, DType dt, int64_t n, int64_t d) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, " (cuda): expects f32 or f64, got ", dtype_name(dt));
  SIAM_CHECK(n >= 1 && d >= 1, op, " (cuda): needs n >= 1 and d >= 1, got ", n, " x ", d);
}

}  // namespace

void nmse_forward(DType dt, int64_t n, int64_t d, const void* p, const void* z, void* stats, double* row_loss,
                  void* loss) {
  check_args("nmse_forward", dt, n, d);
  const rowwise::RowLaunch L = rowwise::row_launch(n, d);
  if (dt == DType::f32) {
    nmse_rows_kernel1<float><<<L.grid, kThreads, 0, stream()>>>(
        n, d, static_cast<const float*>(p), static_cast<const float*>(z), static_cast<float*>(stats), row_loss, L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
    nmse_mean_kernel1<float><<<1, kThreads, 0, stream()>>>(n, row_loss, static_cast<float*>(loss));
  } else {
    nmse_rows_kernel1<double><<<L.grid, kThreads, 0, stream()>>>(
        n, d, static_cast<const double*>(p), static_cast<const double*>(z), static_cast<double*>(stats), row_loss,
        L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
    nmse_mean_kernel1<double><<<1, kThreads, 0, stream()>>>(n, row_loss, static_cast<double*>(loss));
  }
  SIAM_CUDA_LAUNCH_CHECK();
}

void nmse_backward(DType dt, int64_t n, int64_t d, const void* grad, const void* p, const void* z, const void* stats,
                   void* dp, void* dz) {
  check_args("nmse_backward", dt, n, d);
  const rowwise::RowLaunch L = rowwise::row_launch(n, d);
  if (dt == DType::f32)
    nmse_backward_kernel1<float><<<L.grid, kThreads, 0, stream()>>>(
        n, d, static_cast<const float*>(grad), static_cast<const float*>(p), static_cast<const float*>(z),
        static_cast<const float*>(stats), static_cast<float*>(dp), static_cast<float*>(dz), L.warp);
  else
    nmse_backward_kernel1<double><<<L.grid, kThreads, 0, stream()>>>(
        n, d, static_cast<const double*>(grad), static_cast<const double*>(p), static_cast<const double*>(z),
        static_cast<const double*>(stats), static_cast<double*>(dp), static_cast<double*>(dz), L.warp);
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace siam::kernels::cuda

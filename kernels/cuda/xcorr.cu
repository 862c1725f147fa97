// Barlow Twins cross-correlation and VICReg's terms on CUDA (steps and versions in xcorr.h; arithmetic in
// kernels/common/xcorr_math.h and vicreg_math.h, shared with the CPU paths).
#include <cuda_runtime.h>

#include "kernels/common/vicreg_math.h"
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
__device__ __forceinline__ double column_total(double (*red)[kCols + 1], double v) {
  return rowwise::column_reduce<rowwise::SumOp<double>, kGroups, kCols>(red, v);
}

// The mean over the n rows of column c (0 for threads past the last column, which must still call it).
template <class T>
__device__ __forceinline__ double column_mean(double (*red)[kCols + 1], int64_t n, int64_t d,
                                              const T* __restrict__ x, int64_t c) {
  double s = 0;
  if (c < d)
    for (int64_t r = threadIdx.y; r < n; r += kGroups) s += static_cast<double>(x[r * d + c]);
  return column_total(red, s) / static_cast<double>(n);
}

template <class T>
__global__ void __launch_bounds__(kCols* kGroups)
    xcorr_standardize_kernel1(int64_t n, int64_t d, const T* __restrict__ x, double eps, T* __restrict__ zh,
                              T* __restrict__ rstd) {
  __shared__ double red[kGroups][kCols + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  const bool in = c < d;
  const double mean = column_mean(red, n, d, x, c);
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
  const double total = rowwise::block_sum(rows, d);
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

// ---- VICReg ----

template <class T>
__global__ void __launch_bounds__(kCols* kGroups)
    vicreg_center_kernel1(int64_t n, int64_t d, const T* __restrict__ x, T* __restrict__ zc, T* __restrict__ mean,
                          T* __restrict__ var, double* __restrict__ var_d) {
  __shared__ double red[kGroups][kCols + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  const bool in = c < d;
  const T mu = static_cast<T>(column_mean(red, n, d, x, c));
  double v = 0;
  if (in)
    for (int64_t r = threadIdx.y; r < n; r += kGroups) {
      const T o = x[r * d + c] - mu;
      zc[r * d + c] = o;
      v += static_cast<double>(o) * static_cast<double>(o);
    }
  const double var_sum = column_total(red, v);
  if (!in || threadIdx.y != 0) return;
  const double vd = var_sum / static_cast<double>(n - 1);
  mean[c] = mu;
  var[c] = static_cast<T>(vd);
  var_d[c] = vd;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    vicreg_sq_rows_kernel1(int64_t cols, const T* __restrict__ a, const T* __restrict__ b, bool skip_diag,
                           double* __restrict__ rows) {
  const int64_t i = blockIdx.x;
  const T* ai = a + i * cols;
  const T* bi = b ? b + i * cols : nullptr;
  double s = 0;
  for (int64_t j = threadIdx.x; j < cols; j += kThreads) {
    const double t = bi ? static_cast<double>(ai[j]) - static_cast<double>(bi[j]) : static_cast<double>(ai[j]);
    s += t * t;
  }
  double total = rowwise::group_reduce<rowwise::SumOp<double>>(s, rowwise::Group{false},
                                                              rowwise::shared_buf<double>());
  if (threadIdx.x != 0) return;
  if (skip_diag) total -= static_cast<double>(ai[i]) * static_cast<double>(ai[i]);
  rows[i] = total;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    vicreg_finish_kernel1(int64_t n, int64_t d, int64_t g, bool gram_form, double eps,
                          const double* __restrict__ inv_rows, const double* __restrict__ gram_rows1,
                          const double* __restrict__ gram_rows2, const double* __restrict__ var_d1,
                          const double* __restrict__ var_d2, T* out) {
  const double dd = static_cast<double>(d), nm1 = static_cast<double>(n - 1);
  const double inv = rowwise::block_sum(inv_rows, n) / (static_cast<double>(n) * dd);
  double variance = 0, covariance = 0;
  for (int branch = 0; branch < 2; ++branch) {
    const double* var_d = branch == 0 ? var_d1 : var_d2;
    double h = 0, q = 0;
    for (int64_t j = threadIdx.x; j < d; j += kThreads) {
      h += siam::kernels::vicreg_hinge(var_d[j], eps);
      q += var_d[j] * var_d[j];
    }
    h = rowwise::group_reduce<rowwise::SumOp<double>>(h, rowwise::Group{false}, rowwise::shared_buf<double>());
    q = rowwise::group_reduce<rowwise::SumOp<double>>(q, rowwise::Group{false}, rowwise::shared_buf<double>());
    const double f = rowwise::block_sum(branch == 0 ? gram_rows1 : gram_rows2, g);
    variance += h / dd / 2.0;
    covariance += (gram_form ? f / (nm1 * nm1) - q : f) / dd;
  }
  if (threadIdx.x == 0) {
    out[0] = static_cast<T>(inv);
    out[1] = static_cast<T>(variance);
    out[2] = static_cast<T>(covariance);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    vicreg_backward_kernel1(int64_t n, int64_t d, int branch, double eps, double cov_scale,
                            const T* __restrict__ grad, const T* __restrict__ zc1, const T* __restrict__ zc2,
                            const T* __restrict__ mean1, const T* __restrict__ mean2, const T* __restrict__ var,
                            const T* __restrict__ diag, int64_t diag_stride, T* __restrict__ p) {
  const double g_inv = static_cast<double>(grad[0]), g_var = static_cast<double>(grad[1]),
               g_cov = static_cast<double>(grad[2]);
  const double dd = static_cast<double>(d), nm1 = static_cast<double>(n - 1);
  const T ci = static_cast<T>((branch == 0 ? 2.0 : -2.0) * g_inv / (static_cast<double>(n) * dd));
  const T pc = static_cast<T>(g_cov * cov_scale);
  const T* zc = branch == 0 ? zc1 : zc2;
  const int64_t total = n * d, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t j = e % d;
    const T coef = static_cast<T>(siam::kernels::vicreg_zc_coef(static_cast<double>(diag[j * diag_stride]),
                                                                static_cast<double>(var[j]), eps, g_var, g_cov,
                                                                dd, nm1));
    const T mdiff = mean1[j] - mean2[j];
    p[e] = pc * p[e] + zc[e] * coef + ci * ((zc1[e] - zc2[e]) + mdiff);
  }
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

void vicreg_center(DType dt, int64_t n, int64_t d, const void* x, void* zc, void* mean, void* var, double* var_d) {
  check_dtype("vicreg_center", dt);
  SIAM_CHECK(n >= 2 && d >= 1, "vicreg_center (cuda): needs n >= 2 and d >= 1, got ", n, " x ", d);
  const dim3 block(kCols, kGroups);
  if (dt == DType::f32)
    vicreg_center_kernel1<float><<<column_blocks(d), block, 0, stream()>>>(
        n, d, static_cast<const float*>(x), static_cast<float*>(zc), static_cast<float*>(mean),
        static_cast<float*>(var), var_d);
  else
    vicreg_center_kernel1<double><<<column_blocks(d), block, 0, stream()>>>(
        n, d, static_cast<const double*>(x), static_cast<double*>(zc), static_cast<double*>(mean),
        static_cast<double*>(var), var_d);
  SIAM_CUDA_LAUNCH_CHECK();
}

void vicreg_sq_rows(DType dt, int64_t r, int64_t c, const void* a, const void* b, bool skip_diag, double* rows) {
  check_dtype("vicreg_sq_rows", dt);
  SIAM_CHECK(r >= 1 && r <= 2147483647 && c >= 1, "vicreg_sq_rows (cuda): bad shape ", r, " x ", c);
  if (dt == DType::f32)
    vicreg_sq_rows_kernel1<float><<<static_cast<unsigned>(r), kThreads, 0, stream()>>>(
        c, static_cast<const float*>(a), static_cast<const float*>(b), skip_diag, rows);
  else
    vicreg_sq_rows_kernel1<double><<<static_cast<unsigned>(r), kThreads, 0, stream()>>>(
        c, static_cast<const double*>(a), static_cast<const double*>(b), skip_diag, rows);
  SIAM_CUDA_LAUNCH_CHECK();
}

void vicreg_finish(DType dt, int64_t n, int64_t d, int64_t g, bool gram_form, double eps, const double* inv_rows,
                   const double* gram_rows1, const double* gram_rows2, const double* var_d1, const double* var_d2,
                   void* out) {
  check_dtype("vicreg_finish", dt);
  if (dt == DType::f32)
    vicreg_finish_kernel1<float><<<1, kThreads, 0, stream()>>>(n, d, g, gram_form, eps, inv_rows, gram_rows1,
                                                               gram_rows2, var_d1, var_d2, static_cast<float*>(out));
  else
    vicreg_finish_kernel1<double><<<1, kThreads, 0, stream()>>>(n, d, g, gram_form, eps, inv_rows, gram_rows1,
                                                                gram_rows2, var_d1, var_d2, static_cast<double*>(out));
  SIAM_CUDA_LAUNCH_CHECK();
}

void vicreg_backward_rows(DType dt, int64_t n, int64_t d, int branch, double eps, double cov_scale, const void* grad,
                          const void* zc1, const void* zc2, const void* mean1, const void* mean2, const void* var,
                          const void* diag, int64_t diag_stride, void* p) {
  check_dtype("vicreg_backward_rows", dt);
  const unsigned blocks = elementwise_blocks(n * d);
#define SIAM_VICREG_BACKWARD(T)                                                                                    \
  vicreg_backward_kernel1<T><<<blocks, kThreads, 0, stream()>>>(                                                  \
      n, d, branch, eps, cov_scale, static_cast<const T*>(grad), static_cast<const T*>(zc1),                      \
      static_cast<const T*>(zc2), static_cast<const T*>(mean1), static_cast<const T*>(mean2),                     \
      static_cast<const T*>(var), static_cast<const T*>(diag), diag_stride, static_cast<T*>(p))
  if (dt == DType::f32)
    SIAM_VICREG_BACKWARD(float);
  else
    SIAM_VICREG_BACKWARD(double);
#undef SIAM_VICREG_BACKWARD
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace siam::kernels::cuda

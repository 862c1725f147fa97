// Sinkhorn-Knopp on CUDA (steps and versions in sinkhorn.h).
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/check.h"
#include "kernels/cuda/rowwise.cuh"
#include "kernels/cuda/sinkhorn.h"

namespace siam::kernels::cuda {

namespace {

using rowwise::Group;
using rowwise::group_reduce;
using rowwise::kThreads;
using rowwise::MaxSkipNanOp;
using rowwise::shared_buf;
using rowwise::stream;
using rowwise::SumOp;

constexpr int kCols = 32;       // prototypes per block of the column kernels
constexpr int kGroups = 8;      // sample groups per block of the column kernels
constexpr int kMaxParts = 1024;  // blocks of the first stage of the maximum

// e^x rounded as the CPU path does: f32 through fastmath's exp, f64 through exp.
template <class T> __device__ __forceinline__ T exp_t(double x) { return rowwise::d_exp(static_cast<T>(x)); }

// ---- plain form ----

template <class T>
__global__ void __launch_bounds__(kThreads) max_partial_kernel1(int64_t n, const T* __restrict__ s,
                                                                 double* __restrict__ part) {
  T m = MaxSkipNanOp<T>::identity();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride)
    m = MaxSkipNanOp<T>::combine(m, s[i]);
  m = group_reduce<MaxSkipNanOp<T>>(m, Group{false}, shared_buf<T>());
  if (threadIdx.x == 0) part[blockIdx.x] = static_cast<double>(m);
}

// shift = max(part) / eps; one block.
__global__ void __launch_bounds__(kThreads) shift_kernel1(int parts, const double* __restrict__ part, double inv_eps,
                                                          double* __restrict__ shift) {
  double m = MaxSkipNanOp<double>::identity();
  for (int i = threadIdx.x; i < parts; i += kThreads) m = MaxSkipNanOp<double>::combine(m, part[i]);
  m = group_reduce<MaxSkipNanOp<double>>(m, Group{false}, shared_buf<double>());
  if (threadIdx.x == 0) shift[0] = m * inv_eps;
}

template <class T>
__global__ void __launch_bounds__(kThreads) exp_kernel1(int64_t n, const T* __restrict__ s, double inv_eps,
                                                         const double* __restrict__ shift, T* __restrict__ e) {
  const double sh = shift[0];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride)
    e[i] = exp_t<T>(static_cast<double>(s[i]) * inv_eps - sh);
}

// a_k = 1 / (K sum_b E_bk c_b) (c null: c_b = 1).
template <class T>
__global__ void __launch_bounds__(kCols* kGroups)
    col_scale_kernel1(int64_t b, int64_t k, const T* __restrict__ e, const double* __restrict__ c,
                      double* __restrict__ a) {
  __shared__ double red[kGroups][kCols + 1];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  double s = 0;
  if (j < k)
    for (int64_t r = threadIdx.y; r < b; r += kGroups)
      s += c ? static_cast<double>(e[r * k + j]) * c[r] : static_cast<double>(e[r * k + j]);
  s = rowwise::column_reduce<SumOp<double>, kGroups, kCols>(red, s);
  if (j < k && threadIdx.y == 0) a[j] = 1.0 / (static_cast<double>(k) * s);
}

// c_b = 1 / (Bg sum_k E_bk a_k); the last pass writes Q_bk = Bg E_bk a_k c_b over E instead.
template <class T>
__global__ void __launch_bounds__(kThreads)
    row_scale_kernel1(int64_t b, int64_t k, T* __restrict__ e, const double* __restrict__ a, double bg,
                      double* __restrict__ c, bool last, bool warp) {
  const Group g{warp};
  double* smem = shared_buf<double>();
  for (int64_t r = g.first(); r < b; r += g.stride()) {
    T* er = e + r * k;
    double acc = 0;
    for (int64_t j = g.rank(); j < k; j += g.size()) acc += static_cast<double>(er[j]) * a[j];
    acc = group_reduce<SumOp<double>>(acc, g, smem);
    const double cr = 1.0 / (bg * acc);
    if (!last) {
      if (g.rank() == 0) c[r] = cr;
    } else {
      const double f = bg * cr;
      for (int64_t j = g.rank(); j < k; j += g.size())
        er[j] = static_cast<T>(static_cast<double>(er[j]) * a[j] * f);
    }
  }
}

// ---- log form ----

// u_k = -log K - lse_b(s_bk / eps + v_b).
template <class T>
__global__ void __launch_bounds__(kCols* kGroups)
    log_col_kernel1(int64_t b, int64_t k, const T* __restrict__ s, double inv_eps, const double* __restrict__ v,
                    double log_k, double* __restrict__ u) {
  __shared__ double red[kGroups][kCols + 1];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  const bool in = j < k;
  double mx = MaxSkipNanOp<double>::identity();
  if (in)
    for (int64_t r = threadIdx.y; r < b; r += kGroups)
      mx = MaxSkipNanOp<double>::combine(mx, static_cast<double>(s[r * k + j]) * inv_eps + v[r]);
  mx = rowwise::column_reduce<MaxSkipNanOp<double>, kGroups, kCols>(red, mx);
  double acc = 0;
  if (in)
    for (int64_t r = threadIdx.y; r < b; r += kGroups)
      acc += static_cast<double>(exp_t<T>(static_cast<double>(s[r * k + j]) * inv_eps + v[r] - mx));
  acc = rowwise::column_reduce<SumOp<double>, kGroups, kCols>(red, acc);
  if (in && threadIdx.y == 0) u[j] = -log_k - (mx + ::log(acc));
}

// v_b = -log Bg - lse_k(s_bk / eps + u_k); the last pass writes Q_bk = exp(s_bk / eps + u_k + v_b + log Bg).
template <class T>
__global__ void __launch_bounds__(kThreads)
    log_row_kernel1(int64_t b, int64_t k, const T* __restrict__ s, double inv_eps, const double* __restrict__ u,
                    double log_bg, double* __restrict__ v, T* __restrict__ q, bool last, bool warp) {
  const Group g{warp};
  double* smem = shared_buf<double>();
  for (int64_t r = g.first(); r < b; r += g.stride()) {
    const T* sr = s + r * k;
    double mx = MaxSkipNanOp<double>::identity();
    for (int64_t j = g.rank(); j < k; j += g.size())
      mx = MaxSkipNanOp<double>::combine(mx, static_cast<double>(sr[j]) * inv_eps + u[j]);
    mx = group_reduce<MaxSkipNanOp<double>>(mx, g, smem);
    double acc = 0;
    for (int64_t j = g.rank(); j < k; j += g.size())
      acc += static_cast<double>(exp_t<T>(static_cast<double>(sr[j]) * inv_eps + u[j] - mx));
    acc = group_reduce<SumOp<double>>(acc, g, smem);
    const double vr = -log_bg - (mx + ::log(acc));
    if (!last) {
      if (g.rank() == 0) v[r] = vr;
    } else {
      T* qr = q + r * k;
      const double w = vr + log_bg;
      for (int64_t j = g.rank(); j < k; j += g.size())
        qr[j] = exp_t<T>(static_cast<double>(sr[j]) * inv_eps + u[j] + w);
    }
  }
}

unsigned grid_of(int64_t n, int64_t cap) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

template <class T>
void run(int64_t b, int64_t k, const T* s, double eps, int iters, bool log_domain, double bg, double* scratch, T* q) {
  const double inv_eps = 1.0 / eps;
  const int64_t n = b * k;
  const unsigned col_blocks = static_cast<unsigned>((k + kCols - 1) / kCols);
  const dim3 col_block(kCols, kGroups);
  const rowwise::RowLaunch rl = rowwise::row_launch(b, k);
  cudaStream_t st = stream();
  if (!log_domain) {
    double *part = scratch, *shift = scratch + kMaxParts, *a = shift + 1, *c = a + k;
    const unsigned parts = grid_of(n, kMaxParts);
    max_partial_kernel1<T><<<parts, kThreads, 0, st>>>(n, s, part);
    SIAM_CUDA_LAUNCH_CHECK();
    shift_kernel1<<<1, kThreads, 0, st>>>(static_cast<int>(parts), part, inv_eps, shift);
    SIAM_CUDA_LAUNCH_CHECK();
    exp_kernel1<T><<<grid_of(n, 65535 * 8), kThreads, 0, st>>>(n, s, inv_eps, shift, q);
    SIAM_CUDA_LAUNCH_CHECK();
    col_scale_kernel1<T><<<col_blocks, col_block, 0, st>>>(b, k, q, nullptr, a);
    SIAM_CUDA_LAUNCH_CHECK();
    for (int it = 0; it < iters; ++it) {
      const bool last = it == iters - 1;
      row_scale_kernel1<T><<<rl.grid, kThreads, 0, st>>>(b, k, q, a, bg, c, last, rl.warp);
      SIAM_CUDA_LAUNCH_CHECK();
      if (!last) {
        col_scale_kernel1<T><<<col_blocks, col_block, 0, st>>>(b, k, q, c, a);
        SIAM_CUDA_LAUNCH_CHECK();
      }
    }
    return;
  }
  double *u = scratch, *v = scratch + k;
  SIAM_CUDA_CHECK(cudaMemsetAsync(v, 0, sizeof(double) * static_cast<size_t>(b), st));
  const double log_k = std::log(static_cast<double>(k)), log_bg = std::log(bg);
  for (int it = 0; it < iters; ++it) {
    const bool last = it == iters - 1;
    log_col_kernel1<T><<<col_blocks, col_block, 0, st>>>(b, k, s, inv_eps, v, log_k, u);
    SIAM_CUDA_LAUNCH_CHECK();
    log_row_kernel1<T><<<rl.grid, kThreads, 0, st>>>(b, k, s, inv_eps, u, log_bg, v, q, last, rl.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

int64_t sinkhorn_scratch_doubles(int64_t b, int64_t k) { return kMaxParts + 1 + k + b; }

void sinkhorn(DType dt, int64_t b, int64_t k, const void* scores, double eps, int iters, bool log_domain, double bg,
              double* scratch, void* q) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, "sinkhorn (cuda): expects f32 or f64, got ", dtype_name(dt));
  SIAM_CHECK(b >= 1 && k >= 1 && iters >= 1 && eps > 0, "sinkhorn (cuda): bad arguments B ", b, " K ", k, " iters ",
             iters, " eps ", eps);
  if (dt == DType::f32)
    run<float>(b, k, static_cast<const float*>(scores), eps, iters, log_domain, bg, scratch, static_cast<float*>(q));
  else
    run<double>(b, k, static_cast<const double*>(scores), eps, iters, log_domain, bg, scratch,
                static_cast<double*>(q));
}

}  // namespace siam::kernels::cuda

// Layer norm on CUDA (versions in layer_norm.h).
#include <cuda_runtime.h>

#include "kernels/cuda/check.h"
#include "kernels/cuda/layer_norm.h"
#include "kernels/cuda/rowwise.cuh"

namespace siam::kernels::cuda {

namespace {

using rowwise::Group;
using rowwise::group_reduce;
using rowwise::kThreads;
using rowwise::shared_buf;
using rowwise::stream;
using rowwise::SumOp;

constexpr int kCols = 32, kGroups = 8;  // the parameter-gradient kernel's block

template <class T>
__global__ void __launch_bounds__(kThreads)
    layer_norm_forward_kernel1(int64_t R, int64_t D, const T* __restrict__ x, const T* __restrict__ w,
                               const T* __restrict__ b, double eps, T* __restrict__ y, T* __restrict__ mean,
                               T* __restrict__ invstd, bool warp) {
  const Group g{warp};
  double* smem = shared_buf<double>();
  for (int64_t i = g.first(); i < R; i += g.stride()) {
    const T* xi = x + i * D;
    double s = 0;
    for (int64_t j = g.rank(); j < D; j += g.size()) s += static_cast<double>(xi[j]);
    const T mt = static_cast<T>(group_reduce<SumOp<double>>(s, g, smem) / static_cast<double>(D));
    double v = 0;
    for (int64_t j = g.rank(); j < D; j += g.size()) {
      const double dv = static_cast<double>(xi[j] - mt);
      v += dv * dv;
    }
    v = group_reduce<SumOp<double>>(v, g, smem);
    const T is = static_cast<T>(1.0 / sqrt(v / static_cast<double>(D) + eps));
    if (g.rank() == 0) mean[i] = mt, invstd[i] = is;
    T* yi = y + i * D;
    for (int64_t j = g.rank(); j < D; j += g.size()) yi[j] = (xi[j] - mt) * is * (w ? w[j] : T(1)) + (b ? b[j] : T(0));
  }
}

// gx = invstd (g w - mean_j(g w) - xhat mean_j(g w xhat)) per row.
template <class T>
__global__ void __launch_bounds__(kThreads)
    layer_norm_backward_rows_kernel1(int64_t R, int64_t D, const T* __restrict__ x, const T* __restrict__ gy,
                                     const T* __restrict__ mean, const T* __restrict__ invstd, const T* __restrict__ w,
                                     T* __restrict__ gx, bool warp) {
  const Group g{warp};
  double* smem = shared_buf<double>();
  for (int64_t i = g.first(); i < R; i += g.stride()) {
    const T* xi = x + i * D;
    const T* gi = gy + i * D;
    const double m = static_cast<double>(mean[i]), is = static_cast<double>(invstd[i]);
    double s1 = 0, s2 = 0;
    for (int64_t j = g.rank(); j < D; j += g.size()) {
      const double gw = static_cast<double>(gi[j]) * (w ? static_cast<double>(w[j]) : 1.0);
      s1 += gw;
      s2 += gw * (static_cast<double>(xi[j]) - m) * is;
    }
    const double m1 = group_reduce<SumOp<double>>(s1, g, smem) / static_cast<double>(D);
    const double m2 = group_reduce<SumOp<double>>(s2, g, smem) / static_cast<double>(D);
    T* oi = gx + i * D;
    for (int64_t j = g.rank(); j < D; j += g.size()) {
      const double gw = static_cast<double>(gi[j]) * (w ? static_cast<double>(w[j]) : 1.0);
      oi[j] = static_cast<T>(is * (gw - m1 - (static_cast<double>(xi[j]) - m) * is * m2));
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kCols* kGroups)
    layer_norm_param_grads_kernel1(int64_t R, int64_t D, const T* __restrict__ x, const T* __restrict__ gy,
                                   const T* __restrict__ mean, const T* __restrict__ invstd, T* __restrict__ gw,
                                   T* __restrict__ gb) {
  __shared__ double red[kGroups][kCols + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  double sw = 0, sb = 0;
  if (c < D)
    for (int64_t r = threadIdx.y; r < R; r += kGroups) {
      const double g = static_cast<double>(gy[r * D + c]);
      sw += g * (static_cast<double>(x[r * D + c]) - static_cast<double>(mean[r])) * static_cast<double>(invstd[r]);
      sb += g;
    }
  sw = rowwise::column_reduce<SumOp<double>, kGroups, kCols>(red, sw);
  sb = rowwise::column_reduce<SumOp<double>, kGroups, kCols>(red, sb);
  if (c >= D || threadIdx.y != 0) return;
  if (gw) gw[c] = static_cast<T>(sw);
  if (gb) gb[c] = static_cast<T>(sb);
}

void check_args(const char* op, DType dt, int64_t R, int64_t D) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, " (cuda): expects f32 or f64, got ", dtype_name(dt));
  SIAM_CHECK(R >= 0 && D >= 1, op, " (cuda): bad shape (R, D) = (", R, ", ", D, ")");
}

template <class T> const T* cp(const void* p) { return static_cast<const T*>(p); }
template <class T> T* mp(void* p) { return static_cast<T*>(p); }

template <class T>
void forward(int64_t R, int64_t D, const void* x, const void* w, const void* b, double eps, void* y, void* mean,
             void* invstd) {
  const rowwise::RowLaunch L = rowwise::row_launch(R, D);
  layer_norm_forward_kernel1<T><<<L.grid, kThreads, 0, stream()>>>(R, D, cp<T>(x), cp<T>(w), cp<T>(b), eps, mp<T>(y),
                                                                   mp<T>(mean), mp<T>(invstd), L.warp);
  SIAM_CUDA_LAUNCH_CHECK();
}

template <class T>
void backward(int64_t R, int64_t D, const void* x, const void* gy, const void* mean, const void* invstd, const void* w,
              void* gx, void* gw, void* gb) {
  if (gx) {
    const rowwise::RowLaunch L = rowwise::row_launch(R, D);
    layer_norm_backward_rows_kernel1<T><<<L.grid, kThreads, 0, stream()>>>(R, D, cp<T>(x), cp<T>(gy), cp<T>(mean),
                                                                           cp<T>(invstd), cp<T>(w), mp<T>(gx), L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  }
  if (gw || gb) {
    const dim3 block(kCols, kGroups);
    const auto grid = static_cast<unsigned>((D + kCols - 1) / kCols);
    layer_norm_param_grads_kernel1<T>
        <<<grid, block, 0, stream()>>>(R, D, cp<T>(x), cp<T>(gy), cp<T>(mean), cp<T>(invstd), mp<T>(gw), mp<T>(gb));
    SIAM_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

void layer_norm_forward(DType dt, int64_t R, int64_t D, const void* x, const void* w, const void* b, double eps,
                        void* y, void* mean, void* invstd) {
  check_args("layer_norm_forward", dt, R, D);
  if (R == 0) return;
  if (dt == DType::f32)
    forward<float>(R, D, x, w, b, eps, y, mean, invstd);
  else
    forward<double>(R, D, x, w, b, eps, y, mean, invstd);
}

void layer_norm_backward(DType dt, int64_t R, int64_t D, const void* x, const void* gy, const void* mean,
                         const void* invstd, const void* w, void* gx, void* gw, void* gb) {
  check_args("layer_norm_backward", dt, R, D);
  if (dt == DType::f32)
    backward<float>(R, D, x, gy, mean, invstd, w, gx, gw, gb);
  else
    backward<double>(R, D, x, gy, mean, invstd, w, gx, gw, gb);
}

}  // namespace siam::kernels::cuda

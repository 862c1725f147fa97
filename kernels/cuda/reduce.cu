// CUDA reductions and the softmax family (shapes in reduce.h).
// A "group" of threads handles one row: a warp when the row is short (cols <= kWarpRowMax, 8 rows per
// 256-thread block), the whole block otherwise. Group results are combined by warp shuffles, then (block
// groups) through shared memory in a fixed order, so results do not change from run to run.
// Versions:
//   reduce_rows_kernel1   group per (row, split); long rows with few rows are split into chunks that write
//                         partial results (f64 for sums), reduced by a second launch of the same kernel.
//   reduce_outer_kernel1  thread per column (coalesced across the warp), rows walked in order; split over
//                         row chunks with a second pass when there are few columns.
//   softmax_kernel1       group per row, three passes over the row (max, sum of exp, write); f32 exp through
//                         kernels/common/fastmath.h as the CPU kernel.
//   logsumexp_kernel1, softmax_bw_kernel1, argmax_kernel1: group per row.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/common/fastmath.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/rowwise.cuh"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

namespace {

using namespace rowwise;

int sm_count() {
  static int n[64] = {};
  const int d = siam::cuda::current_device();
  if (d < 64 && n[d] > 0) return n[d];
  int v = 0;
  SIAM_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, d));
  if (d < 64) n[d] = v;
  return v;
}

// Scratch device memory from the caching allocator, released at scope end (stream-ordered: the next user on
// this stream runs after the kernels that use it).
struct Scratch {
  explicit Scratch(size_t bytes) {
    const int d = siam::cuda::current_device();
    device = d;
    p = siam::cuda::caching_alloc(bytes, d, siam::cuda::current_stream(d));
  }
  ~Scratch() { siam::cuda::caching_free(p, device); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* p;
  int device;
};

// ---- reduce_rows ----
// Group per (row, split): columns [s * chunk, min(cols, (s + 1) * chunk)), result at out[row * splits + s].
template <class In, class Out, class Op>
__global__ void reduce_rows_kernel1(int64_t rows, int64_t cols, int64_t splits, int64_t chunk, const In* __restrict__ x,
                                    Out* __restrict__ out, bool warp) {
  using A = typename Op::acc;
  const Group g{warp};
  A* smem = shared_buf<A>();
  for (int64_t item = g.first(); item < rows * splits; item += g.stride()) {
    const int64_t r = item / splits, s = item % splits;
    const int64_t c0 = s * chunk, c1 = c0 + chunk < cols ? c0 + chunk : cols;
    const In* p = x + r * cols;
    A v = Op::identity();
#pragma unroll 4
    for (int64_t c = c0 + g.rank(); c < c1; c += g.size()) v = Op::combine(v, static_cast<A>(p[c]));
    v = group_reduce<Op>(v, g, smem);
    if (g.rank() == 0) out[item] = static_cast<Out>(v);
  }
}

template <class In, class Out, class Op>
void launch_rows(int64_t rows, int64_t cols, int64_t splits, const In* x, Out* out) {
  const int64_t chunk = (cols + splits - 1) / splits;
  const bool warp = chunk <= kWarpRowMax;
  const int64_t groups = rows * splits;
  const int64_t blocks = warp ? (groups + kThreads / 32 - 1) / (kThreads / 32) : groups;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(blocks, 65535 * 16));
  reduce_rows_kernel1<In, Out, Op><<<grid, kThreads, 0, stream()>>>(rows, cols, splits, chunk, x, out, warp);
  SIAM_CUDA_LAUNCH_CHECK();
}

// Splits long rows when there are too few rows to fill the device.
template <class T, class Op> void rows_any(int64_t rows, int64_t cols, const T* x, T* out) {
  using A = typename Op::acc;
  const int64_t want_groups = int64_t(sm_count()) * 8;
  int64_t splits = 1;
  if (rows < want_groups && cols > 16 * kWarpRowMax)
    splits = std::min<int64_t>((want_groups + rows - 1) / rows, cols / (4 * kWarpRowMax));
  if (splits <= 1) {
    launch_rows<T, T, Op>(rows, cols, 1, x, out);
    return;
  }
  Scratch partial(static_cast<size_t>(rows * splits) * sizeof(A));  // (rows, splits)
  A* pp = static_cast<A*>(partial.p);
  launch_rows<T, A, Op>(rows, cols, splits, x, pp);
  launch_rows<A, T, Op>(rows, splits, 1, pp, out);
}

// ---- reduce_outer ----
// out[s * inner + j] = op over rows [s * chunk, min(outer, (s + 1) * chunk)) of x[i, j].
template <class In, class Out, class Op>
__global__ void reduce_outer_kernel1(int64_t outer, int64_t inner, int64_t chunk, const In* __restrict__ x,
                                     Out* __restrict__ out) {
  using A = typename Op::acc;
  const int64_t s = blockIdx.y;
  const int64_t i0 = s * chunk, i1 = i0 + chunk < outer ? i0 + chunk : outer;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < inner;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A v = Op::identity();
#pragma unroll 4
    for (int64_t i = i0; i < i1; ++i) v = Op::combine(v, static_cast<A>(x[i * inner + j]));
    out[s * inner + j] = static_cast<Out>(v);
  }
}

template <class In, class Out, class Op>
void launch_outer(int64_t outer, int64_t inner, int64_t splits, const In* x, Out* out) {
  const int64_t chunk = (outer + splits - 1) / splits;
  dim3 grid(static_cast<unsigned>(std::min<int64_t>((inner + kThreads - 1) / kThreads, 65535 * 16)),
            static_cast<unsigned>(splits));
  reduce_outer_kernel1<In, Out, Op><<<grid, kThreads, 0, stream()>>>(outer, inner, chunk, x, out);
  SIAM_CUDA_LAUNCH_CHECK();
}

template <class T, class Op> void outer_any(int64_t outer, int64_t inner, const T* x, T* out) {
  using A = typename Op::acc;
  const int64_t want_threads = int64_t(sm_count()) * 1024;
  int64_t splits = 1;
  if (inner < want_threads && outer >= 128)
    splits = std::min<int64_t>({(want_threads + inner - 1) / inner, outer / 32, 65535});
  if (splits <= 1) {
    launch_outer<T, T, Op>(outer, inner, 1, x, out);
    return;
  }
  Scratch partial(static_cast<size_t>(splits * inner) * sizeof(A));  // (splits, inner)
  A* pp = static_cast<A*>(partial.p);
  launch_outer<T, A, Op>(outer, inner, splits, x, pp);
  launch_outer<A, T, Op>(splits, inner, 1, pp, out);
}

// ---- softmax family ----
template <class T>
__global__ void softmax_kernel1(int64_t rows, int64_t cols, const T* __restrict__ x, T* __restrict__ y, bool log,
                                bool warp) {
  const Group g{warp};
  T* smem = shared_buf<T>();
  for (int64_t r = g.first(); r < rows; r += g.stride()) {
    const T* p = x + r * cols;
    T* q = y + r * cols;
    T m = MaxSkipNanOp<T>::identity();
#pragma unroll 4
    for (int64_t c = g.rank(); c < cols; c += g.size()) m = MaxSkipNanOp<T>::combine(m, p[c]);
    m = group_reduce<MaxSkipNanOp<T>>(m, g, smem);
    if (m == -d_inf<T>()) m = T(0);
    T s = 0;
#pragma unroll 4
    for (int64_t c = g.rank(); c < cols; c += g.size()) s += d_exp(p[c] - m);
    s = group_reduce<SumOp<T>>(s, g, smem);
    if (log) {
      const T lse = m + d_log(s);
#pragma unroll 4
      for (int64_t c = g.rank(); c < cols; c += g.size()) q[c] = p[c] - lse;
    } else {
      const T inv = T(1) / s;
#pragma unroll 4
      for (int64_t c = g.rank(); c < cols; c += g.size()) q[c] = d_exp(p[c] - m) * inv;
    }
  }
}

template <class T>
__global__ void logsumexp_kernel1(int64_t rows, int64_t cols, const T* __restrict__ x, T* __restrict__ out, bool warp) {
  const Group g{warp};
  T* smem = shared_buf<T>();
  for (int64_t r = g.first(); r < rows; r += g.stride()) {
    const T* p = x + r * cols;
    T m = MaxSkipNanOp<T>::identity();
#pragma unroll 4
    for (int64_t c = g.rank(); c < cols; c += g.size()) m = MaxSkipNanOp<T>::combine(m, p[c]);
    m = group_reduce<MaxSkipNanOp<T>>(m, g, smem);
    if (m == -d_inf<T>() || m == d_inf<T>()) {
      if (g.rank() == 0) out[r] = m;
      continue;
    }
    T s = 0;
#pragma unroll 4
    for (int64_t c = g.rank(); c < cols; c += g.size()) s += d_exp(p[c] - m);
    s = group_reduce<SumOp<T>>(s, g, smem);
    if (g.rank() == 0) out[r] = m + d_log(s);
  }
}

template <class T>
__global__ void softmax_bw_kernel1(int64_t rows, int64_t cols, const T* __restrict__ gr, const T* __restrict__ y,
                                   T* __restrict__ gx, bool log, bool warp) {
  const Group g{warp};
  T* smem = shared_buf<T>();
  for (int64_t r = g.first(); r < rows; r += g.stride()) {
    const T* pg = gr + r * cols;
    const T* py = y + r * cols;
    T* o = gx + r * cols;
    T s = 0;
    if (log) {
#pragma unroll 4
      for (int64_t c = g.rank(); c < cols; c += g.size()) s += pg[c];
    } else {
#pragma unroll 4
      for (int64_t c = g.rank(); c < cols; c += g.size()) s += pg[c] * py[c];
    }
    s = group_reduce<SumOp<T>>(s, g, smem);
    if (log) {
#pragma unroll 4
      for (int64_t c = g.rank(); c < cols; c += g.size()) o[c] = pg[c] - d_exp(py[c]) * s;
    } else {
#pragma unroll 4
      for (int64_t c = g.rank(); c < cols; c += g.size()) o[c] = py[c] * (pg[c] - s);
    }
  }
}

// (value, index) pairs: larger value wins, ties go to the smaller index; NaN values never win.
template <class T>
__global__ void argmax_kernel1(int64_t rows, int64_t cols, const T* __restrict__ x, int64_t* __restrict__ out,
                               bool warp) {
  const Group g{warp};
  __shared__ T sv[32];
  __shared__ int64_t si[32];
  for (int64_t r = g.first(); r < rows; r += g.stride()) {
    const T* p = x + r * cols;
    if (p[0] != p[0]) {  // the sequential scan never moves past a leading NaN
      if (g.rank() == 0) out[r] = 0;
      continue;
    }
    T bv = -d_inf<T>();
    int64_t bi = 0;
    bool have = false;
#pragma unroll 4
    for (int64_t c = g.rank(); c < cols; c += g.size()) {
      const T v = p[c];
      if (v != v) continue;
      if (!have || v > bv) {  // c increases per thread: ties keep the first
        bv = v;
        bi = c;
        have = true;
      }
    }
    if (!have) bi = cols;  // marks "nothing" (-inf with the largest index loses every tie)
    auto better = [](T v1, int64_t i1, T v2, int64_t i2) { return v2 > v1 || (v2 == v1 && i2 < i1); };
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const T ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(bv, bi, ov, oi)) {
        bv = ov;
        bi = oi;
      }
    }
    if (!g.warp) {
      __syncthreads();
      if ((threadIdx.x & 31) == 0) {
        sv[threadIdx.x / 32] = bv;
        si[threadIdx.x / 32] = bi;
      }
      __syncthreads();
      bv = sv[0];
      bi = si[0];
      for (int i = 1; i < static_cast<int>(blockDim.x / 32); ++i)
        if (better(bv, bi, sv[i], si[i])) {
          bv = sv[i];
          bi = si[i];
        }
    }
    if (g.rank() == 0) out[r] = bi >= cols ? 0 : bi;
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

void reduce_rows(ReduceOp op, DType dtype, int64_t rows, int64_t cols, const void* x, void* out) {
  if (rows == 0) return;
  SIAM_CHECK(cols > 0, "reduce_rows (cuda): empty rows");
  dispatch_float(dtype, "reduce", [&](auto t0) {
    using T = decltype(t0);
    const T* xp = static_cast<const T*>(x);
    T* op_ = static_cast<T*>(out);
    switch (op) {
      case ReduceOp::sum: rows_any<T, SumOp<double>>(rows, cols, xp, op_); break;
      case ReduceOp::max: rows_any<T, MaxOp<T>>(rows, cols, xp, op_); break;
      case ReduceOp::min: rows_any<T, MinOp<T>>(rows, cols, xp, op_); break;
    }
  });
}

void reduce_outer(ReduceOp op, DType dtype, int64_t outer, int64_t inner, const void* x, void* out) {
  if (inner == 0) return;
  SIAM_CHECK(outer > 0, "reduce_outer (cuda): nothing to reduce");
  dispatch_float(dtype, "reduce", [&](auto t0) {
    using T = decltype(t0);
    const T* xp = static_cast<const T*>(x);
    T* op_ = static_cast<T*>(out);
    switch (op) {
      case ReduceOp::sum: outer_any<T, SumOp<double>>(outer, inner, xp, op_); break;
      case ReduceOp::max: outer_any<T, MaxOp<T>>(outer, inner, xp, op_); break;
      case ReduceOp::min: outer_any<T, MinOp<T>>(outer, inner, xp, op_); break;
    }
  });
}

void softmax_rows(DType dtype, int64_t rows, int64_t cols, const void* x, void* y, bool log) {
  if (rows == 0 || cols == 0) return;
  const RowLaunch L = row_launch(rows, cols);
  dispatch_float(dtype, "softmax", [&](auto t0) {
    using T = decltype(t0);
    softmax_kernel1<T>
        <<<L.grid, kThreads, 0, stream()>>>(rows, cols, static_cast<const T*>(x), static_cast<T*>(y), log, L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void logsumexp_rows(DType dtype, int64_t rows, int64_t cols, const void* x, void* out) {
  if (rows == 0) return;
  SIAM_CHECK(cols > 0, "logsumexp (cuda): empty rows");
  const RowLaunch L = row_launch(rows, cols);
  dispatch_float(dtype, "logsumexp", [&](auto t0) {
    using T = decltype(t0);
    logsumexp_kernel1<T>
        <<<L.grid, kThreads, 0, stream()>>>(rows, cols, static_cast<const T*>(x), static_cast<T*>(out), L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void softmax_backward_rows(DType dtype, int64_t rows, int64_t cols, const void* g, const void* y, void* gx, bool log) {
  if (rows == 0 || cols == 0) return;
  const RowLaunch L = row_launch(rows, cols);
  dispatch_float(dtype, "softmax_backward", [&](auto t0) {
    using T = decltype(t0);
    softmax_bw_kernel1<T><<<L.grid, kThreads, 0, stream()>>>(
        rows, cols, static_cast<const T*>(g), static_cast<const T*>(y), static_cast<T*>(gx), log, L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void argmax_rows(DType dtype, int64_t rows, int64_t cols, const void* x, int64_t* out) {
  if (rows == 0) return;
  SIAM_CHECK(cols > 0, "argmax (cuda): empty rows");
  const RowLaunch L = row_launch(rows, cols);
  dispatch_float(dtype, "argmax", [&](auto t0) {
    using T = decltype(t0);
    argmax_kernel1<T><<<L.grid, kThreads, 0, stream()>>>(rows, cols, static_cast<const T*>(x), out, L.warp);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace siam::kernels::cuda

// Row-wise building blocks of the CUDA reduction kernels (reduce.cu, loss.cu, xcorr.cu, sinkhorn.cu, ...): a
// group of threads per row (a warp for short rows, the block for long ones), group reductions with a fixed
// combination order (deterministic), the combine operators, the launch shape, and the column reduction of the
// column kernels. Internal to kernels/cuda (.cu files only).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/common/fastmath.h"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda::rowwise {

constexpr int kThreads = 256;
constexpr int64_t kWarpRowMax = 1024;  // rows up to this length get a warp, longer ones the block

inline cudaStream_t stream() { return static_cast<cudaStream_t>(siam::cuda::current_stream()); }

// ---- math ----
__device__ __forceinline__ float d_exp(float x) { return fastmath::exp_f32(x); }
__device__ __forceinline__ double d_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return ::log(x); }
template <class T> __device__ __forceinline__ T d_inf() { return std::numeric_limits<T>::infinity(); }

template <class A> struct SumOp {
  using acc = A;
  __device__ static A identity() { return A(0); }
  __device__ static A combine(A a, A b) { return a + b; }
};
template <class T> struct MaxOp {  // NaN wins
  using acc = T;
  __device__ static T identity() { return -d_inf<T>(); }
  __device__ static T combine(T a, T b) { return (a > b || a != a) ? a : b; }
};
template <class T> struct MinOp {
  using acc = T;
  __device__ static T identity() { return d_inf<T>(); }
  __device__ static T combine(T a, T b) { return (a < b || a != a) ? a : b; }
};
template <class T> struct MaxSkipNanOp {  // the CPU's row_max: NaNs never win
  __device__ static T identity() { return -d_inf<T>(); }
  __device__ static T combine(T a, T b) { return b > a ? b : a; }
};

// Thread groups: a warp per row, or the block per row.
struct Group {
  bool warp;
  __device__ int size() const { return warp ? 32 : static_cast<int>(blockDim.x); }
  __device__ int rank() const { return warp ? static_cast<int>(threadIdx.x & 31) : static_cast<int>(threadIdx.x); }
  __device__ int64_t first() const {
    return warp ? static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32 : blockIdx.x;
  }
  __device__ int64_t stride() const { return warp ? static_cast<int64_t>(gridDim.x) * (blockDim.x / 32) : gridDim.x; }
};

// Combines v over the group with Op; every thread of the group gets the result.
template <class Op, class A> __device__ __forceinline__ A group_reduce(A v, const Group& g, A* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = Op::combine(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (g.warp) return v;
  __syncthreads();  // smem may still be read from a previous reduction
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  v = smem[0];
  for (int i = 1; i < static_cast<int>(blockDim.x / 32); ++i) v = Op::combine(v, smem[i]);
  return v;
}

// Column kernels: a block of (Cols, Groups) threads, thread (x, y) walking rows y, y + Groups, ... of column x.
// Combines the Groups partial values of column threadIdx.x with Op, in group order (deterministic); every
// thread of the column gets the result. red: shared (Groups, Cols + 1). Ends synchronized, so red can be reused.
template <class Op, int Groups, int Cols, class A>
__device__ __forceinline__ A column_reduce(A (*red)[Cols + 1], A v) {
  red[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  A s = red[0][threadIdx.x];
#pragma unroll
  for (int k = 1; k < Groups; ++k) s = Op::combine(s, red[k][threadIdx.x]);
  __syncthreads();
  return s;
}

template <class A> __device__ A* shared_buf() {
  __shared__ double raw[32];
  return reinterpret_cast<A*>(raw);
}

// The sum of v[0..n) over the block (blockDim.x == kThreads), in a fixed order; every thread gets it.
__device__ __forceinline__ double block_sum(const double* __restrict__ v, int64_t n) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) s += v[i];
  return group_reduce<SumOp<double>>(s, Group{false}, shared_buf<double>());
}

struct RowLaunch {
  unsigned grid;
  bool warp;
};
inline RowLaunch row_launch(int64_t rows, int64_t cols) {
  const bool warp = cols <= kWarpRowMax;
  const int64_t blocks = warp ? (rows + kThreads / 32 - 1) / (kThreads / 32) : rows;
  return {static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535 * 16))), warp};
}

}  // namespace siam::kernels::cuda::rowwise

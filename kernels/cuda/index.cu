// CUDA index kernels (shapes in index.h).
// Versions:
//   index_select_kernel1  one thread per output element (o, i, j), j fastest: coalesced reads and writes.
//   index_add_kernel1     one thread per g element, atomicAdd into gx (f64 atomics need sm_60+).
//   gather_kernel1 / scatter_add_kernel1  one thread per index element; the other coordinates' offset from the
//                         coalesced index shape with the indexed dim's stride set to 0 (offset.cuh).
#include <cuda_runtime.h>

#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/index.h"
#include "kernels/cuda/offset.cuh"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

namespace {

constexpr int kThreads = 256;
cudaStream_t stream() { return static_cast<cudaStream_t>(siam::cuda::current_stream()); }

template <class T>
__global__ void index_select_kernel1(int64_t outer, int64_t n_x, int64_t inner, const T* __restrict__ x,
                                     const int64_t* __restrict__ idx, int64_t n_idx, T* __restrict__ out) {
  const int64_t n = outer * n_idx * inner;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e % inner, oi = e / inner;
    const int64_t i = oi % n_idx, o = oi / n_idx;
    out[e] = x[(o * n_x + idx[i]) * inner + j];
  }
}

template <class T>
__global__ void index_add_kernel1(int64_t outer, int64_t n_x, int64_t inner, T* __restrict__ gx,
                                  const int64_t* __restrict__ idx, int64_t n_idx, const T* __restrict__ g) {
  const int64_t n = outer * n_idx * inner;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e % inner, oi = e / inner;
    const int64_t i = oi % n_idx, o = oi / n_idx;
    atomicAdd(gx + (o * n_x + idx[i]) * inner + j, g[e]);
  }
}

template <class T>
__global__ void gather_kernel1(Offsets<1> o, int64_t n, int64_t dim_stride, const T* __restrict__ x,
                               const int64_t* __restrict__ idx, T* __restrict__ out) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off;
    o.at(e, &off);
    out[e] = x[off + idx[e] * dim_stride];
  }
}

template <class T>
__global__ void scatter_add_kernel1(Offsets<1> o, int64_t n, int64_t dim_stride, T* __restrict__ out,
                                    const int64_t* __restrict__ idx, const T* __restrict__ src) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off;
    o.at(e, &off);
    atomicAdd(out + off + idx[e] * dim_stride, src[e]);
  }
}

template <class F> void dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    default: SIAM_FAIL(op, " (cuda): expects an f32 or f64 tensor");
  }
}

// Offsets over the index shape with the target's strides, the indexed dim's stride zeroed.
Offsets<1> other_dims(int ndim, const int64_t* idx_shape, int dim, const int64_t* strides) {
  std::vector<int64_t> st(strides, strides + ndim);
  st[static_cast<size_t>(dim)] = 0;
  const int64_t* s[1] = {st.data()};
  return make_offsets<1>(ndim, idx_shape, s);
}

}  // namespace

void index_select(DType dtype, int64_t outer, int64_t n_x, int64_t inner, const void* x, const int64_t* idx,
                  int64_t n_idx, void* out) {
  const int64_t n = outer * n_idx * inner;
  if (n == 0) return;
  dispatch_float(dtype, "index_select", [&](auto t0) {
    using T = decltype(t0);
    index_select_kernel1<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        outer, n_x, inner, static_cast<const T*>(x), idx, n_idx, static_cast<T*>(out));
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void index_add(DType dtype, int64_t outer, int64_t n_x, int64_t inner, void* gx, const int64_t* idx, int64_t n_idx,
               const void* g) {
  const int64_t n = outer * n_idx * inner;
  if (n == 0) return;
  dispatch_float(dtype, "index_add", [&](auto t0) {
    using T = decltype(t0);
    index_add_kernel1<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(outer, n_x, inner, static_cast<T*>(gx), idx,
                                                                           n_idx, static_cast<const T*>(g));
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void gather(DType dtype, int ndim, const int64_t* idx_shape, int dim, const void* x, const int64_t* x_strides,
            const int64_t* idx, void* out) {
  SIAM_CHECK(ndim <= kMaxDims && dim >= 0 && dim < ndim, "gather (cuda): bad rank ", ndim, " or dim ", dim);
  const int64_t n = shape_numel(ndim, idx_shape);
  if (n == 0) return;
  Offsets<1> o = other_dims(ndim, idx_shape, dim, x_strides);
  dispatch_float(dtype, "gather", [&](auto t0) {
    using T = decltype(t0);
    gather_kernel1<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(o, n, x_strides[dim], static_cast<const T*>(x),
                                                                        idx, static_cast<T*>(out));
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void scatter_add(DType dtype, int ndim, const int64_t* idx_shape, int dim, void* out, const int64_t* out_strides,
                 const int64_t* idx, const void* src) {
  SIAM_CHECK(ndim <= kMaxDims && dim >= 0 && dim < ndim, "scatter_add (cuda): bad rank ", ndim, " or dim ", dim);
  const int64_t n = shape_numel(ndim, idx_shape);
  if (n == 0) return;
  Offsets<1> o = other_dims(ndim, idx_shape, dim, out_strides);
  dispatch_float(dtype, "scatter_add", [&](auto t0) {
    using T = decltype(t0);
    scatter_add_kernel1<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        o, n, out_strides[dim], static_cast<T*>(out), idx, static_cast<const T*>(src));
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace siam::kernels::cuda

// Strided copy with dtype conversion and fill on CUDA (the twins of kernels/cpu/copy.cpp).
//   copy_strided: dst[c] = convert<D>(src[c]) for every coordinate c of `shape`; any of f32, f64, bf16, f16,
//                 i32, i64, u8 on either side. Conversions as on the CPU: through f32 for bf16/f16, otherwise
//                 static_cast (floating to integer truncates toward zero).
//   fill:         dst[i] = value (converted on the host with the same rules), i < n.
// Versions:
//   copy_kernel1  grid-stride, one element per thread, offsets from the coalesced dims (kernels/cuda/offset.cuh);
//                 a same-dtype copy where both sides are contiguous is a cudaMemcpyAsync instead, and
//                 same-dtype strided copies move raw 1/2/4/8-byte words (4 instantiations, not 7).
//   fill_kernel1  grid-stride, one raw word per thread; fills with zero bits are a cudaMemsetAsync.
#include <cuda_runtime.h>

#include <cstring>
#include <type_traits>

#include "kernels/common/half.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/offset.cuh"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

namespace {

template <class D, class S> SIAM_HD_INLINE D convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<S, bf16> || std::is_same_v<S, f16>) {
    return convert<D>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<D, bf16> || std::is_same_v<D, f16>) {
    return D(static_cast<float>(v));
  } else {
    return static_cast<D>(v);
  }
}

template <class D, class S>
__global__ void copy_kernel1(Offsets<2> o, int64_t n, D* __restrict__ dst, const S* __restrict__ src, bool linear) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (linear) {
      dst[i] = convert<D>(src[i]);
    } else {
      int64_t off[2];
      o.at(i, off);
      dst[off[0]] = convert<D>(src[off[1]]);
    }
  }
}

template <class T> __global__ void fill_kernel1(T* __restrict__ dst, int64_t n, T v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = v;
}

cudaStream_t stream() { return static_cast<cudaStream_t>(siam::cuda::current_stream()); }

template <class F> void dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::bf16: f(bf16{}); break;
    case DType::f16: f(f16{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    case DType::u8: f(uint8_t{}); break;
  }
}

template <size_t N> struct word_of;
template <> struct word_of<1> { using type = uint8_t; };
template <> struct word_of<2> { using type = uint16_t; };
template <> struct word_of<4> { using type = uint32_t; };
template <> struct word_of<8> { using type = uint64_t; };

template <class D, class S> void launch_copy(const Offsets<2>& o, int64_t n, void* dst, const void* src) {
  constexpr int kThreads = 256;
  copy_kernel1<D, S><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(o, n, static_cast<D*>(dst),
                                                                       static_cast<const S*>(src), is_linear(o));
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace

void copy_strided(int ndim, const int64_t* shape, const void* src, const int64_t* src_strides, DType src_dtype,
                  void* dst, const int64_t* dst_strides, DType dst_dtype) {
  SIAM_CHECK(ndim <= kMaxDims, "copy (cuda): at most ", kMaxDims, " dims, got ", ndim);
  const int64_t n = shape_numel(ndim, shape);
  if (n == 0) return;
  const int64_t* strides[2] = {dst_strides, src_strides};
  Offsets<2> o = make_offsets<2>(ndim, shape, strides);
  if (src_dtype == dst_dtype) {
    const size_t es = dtype_size(src_dtype);
    if (is_linear(o)) {
      SIAM_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * es, cudaMemcpyDeviceToDevice, stream()));
      return;
    }
    switch (es) {
      case 1: launch_copy<uint8_t, uint8_t>(o, n, dst, src); break;
      case 2: launch_copy<uint16_t, uint16_t>(o, n, dst, src); break;
      case 4: launch_copy<uint32_t, uint32_t>(o, n, dst, src); break;
      default: launch_copy<uint64_t, uint64_t>(o, n, dst, src); break;
    }
    return;
  }
  dispatch_all(dst_dtype, [&](auto d0) {
    using D = decltype(d0);
    dispatch_all(src_dtype, [&](auto s0) {
      using S = decltype(s0);
      if constexpr (!std::is_same_v<D, S>) launch_copy<D, S>(o, n, dst, src);
    });
  });
}

void fill(void* dst, int64_t n, DType dtype, double value) {
  if (n == 0) return;
  dispatch_all(dtype, [&](auto d0) {
    using D = decltype(d0);
    const D v = convert<D>(value);
    using W = typename word_of<sizeof(D)>::type;
    W w;
    std::memcpy(&w, &v, sizeof(W));
    if (w == 0) {  // zeros (and +0.0) are a memset
      SIAM_CUDA_CHECK(cudaMemsetAsync(dst, 0, static_cast<size_t>(n) * sizeof(D), stream()));
      return;
    }
    constexpr int kThreads = 256;
    fill_kernel1<W><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(static_cast<W*>(dst), n, w);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace siam::kernels::cuda

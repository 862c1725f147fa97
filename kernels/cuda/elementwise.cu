// CUDA elementwise kernels (see elementwise.h for the shapes). The per-element math mirrors
// kernels/cpu/elementwise.cpp op for op; f32 exp, sigmoid and tanh use the same kernels/common/fastmath.h
// functions as the CPU, so those agree bit for bit; the rest use CUDA's libm (erf, log, pow within 1-2 ulp of
// glibc). Layers (ggml style): __global__ kernel <- static launcher (block size, stream) <- entry (dtype,
// shape checks, op switch).
// Versions:
//   unary_kernel1 / unary_bw_kernel1  grid-stride over 16-byte vectors (4 f32 or 2 f64) when every pointer is
//                 16-byte aligned, scalar tail; else one element per thread.
//   binary_kernel1  contiguous or scalar-broadcast operands: 16-byte vectors as above (a broadcast scalar is
//                 replicated); any other broadcast: per-element offsets from the coalesced dims (offset.cuh).
//   compare_kernel1, where_kernel1  one element per thread, linear or offsets.
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/common/fastmath.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/offset.cuh"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

namespace {

constexpr int kThreads = 256;

cudaStream_t stream() { return static_cast<cudaStream_t>(siam::cuda::current_stream()); }

template <class T, int V> struct alignas(sizeof(T) * V) Vec { T v[V]; };

// ---- device math (float and double overloads) ----
__device__ __forceinline__ float d_exp(float x) { return fastmath::exp_f32(x); }
__device__ __forceinline__ double d_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return ::log(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float d_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double d_abs(double x) { return ::fabs(x); }
__device__ __forceinline__ float d_erf(float x) { return erff(x); }
__device__ __forceinline__ double d_erf(double x) { return ::erf(x); }
__device__ __forceinline__ float d_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return ::pow(x, y); }
__device__ __forceinline__ float d_sigmoid(float x) { return fastmath::sigmoid_f32(x); }
__device__ __forceinline__ double d_sigmoid(double x) { return 1.0 / (1.0 + ::exp(-x)); }
__device__ __forceinline__ float d_tanh(float x) { return fastmath::tanh_f32(x); }
__device__ __forceinline__ double d_tanh(double x) { return ::tanh(x); }

template <class T> __device__ __forceinline__ T gelu_f(T x) {
  return T(0.5) * x * (T(1) + d_erf(x * T(0.70710678118654752440)));
}
template <class T> __device__ __forceinline__ T gelu_d(T x) {
  T cdf = T(0.5) * (T(1) + d_erf(x * T(0.70710678118654752440)));
  T pdf = d_exp(T(-0.5) * x * x) * T(0.39894228040143267794);
  return cdf + x * pdf;
}

template <class T, UnaryOp OP> __device__ __forceinline__ T unary_f(T x, T p0, T p1) {
  if constexpr (OP == UnaryOp::neg) return -x;
  if constexpr (OP == UnaryOp::exp) return d_exp(x);
  if constexpr (OP == UnaryOp::log) return d_log(x);
  if constexpr (OP == UnaryOp::sqrt) return d_sqrt(x);
  if constexpr (OP == UnaryOp::rsqrt) return T(1) / d_sqrt(x);
  if constexpr (OP == UnaryOp::abs) return d_abs(x);
  if constexpr (OP == UnaryOp::relu) return x > T(0) ? x : T(0);
  if constexpr (OP == UnaryOp::gelu) return gelu_f(x);
  if constexpr (OP == UnaryOp::sigmoid) return d_sigmoid(x);
  if constexpr (OP == UnaryOp::tanh) return d_tanh(x);
  if constexpr (OP == UnaryOp::sign) return T((x > T(0)) - (x < T(0)));
  if constexpr (OP == UnaryOp::add_scalar) return x + p0;
  if constexpr (OP == UnaryOp::mul_scalar) return x * p0;
  if constexpr (OP == UnaryOp::rsub_scalar) return p0 - x;
  if constexpr (OP == UnaryOp::rdiv_scalar) return p0 / x;
  if constexpr (OP == UnaryOp::pow_scalar) {
    if (p0 == T(2)) return x * x;
    if (p0 == T(1)) return x;
    return d_pow(x, p0);
  }
  if constexpr (OP == UnaryOp::clamp) return x < p0 ? p0 : (x > p1 ? p1 : x);
  return x;
}

// d y / d x given x and y = f(x) (as kernels/cpu/elementwise.cpp).
template <class T, UnaryOp OP> __device__ __forceinline__ T unary_d(T x, T y, T p0, T p1) {
  if constexpr (OP == UnaryOp::neg) return T(-1);
  if constexpr (OP == UnaryOp::exp) return y;
  if constexpr (OP == UnaryOp::log) return T(1) / x;
  if constexpr (OP == UnaryOp::sqrt) return T(0.5) / y;
  if constexpr (OP == UnaryOp::rsqrt) return T(-0.5) * y * y * y;
  if constexpr (OP == UnaryOp::abs) return T((x > T(0)) - (x < T(0)));
  if constexpr (OP == UnaryOp::relu) return x > T(0) ? T(1) : T(0);
  if constexpr (OP == UnaryOp::gelu) return gelu_d(x);
  if constexpr (OP == UnaryOp::sigmoid) return y * (T(1) - y);
  if constexpr (OP == UnaryOp::tanh) return T(1) - y * y;
  if constexpr (OP == UnaryOp::sign) return T(0);
  if constexpr (OP == UnaryOp::add_scalar) return T(1);
  if constexpr (OP == UnaryOp::mul_scalar) return p0;
  if constexpr (OP == UnaryOp::rsub_scalar) return T(-1);
  if constexpr (OP == UnaryOp::rdiv_scalar) return -y / x;
  if constexpr (OP == UnaryOp::pow_scalar) {
    if (p0 == T(0)) return T(0);
    if (p0 == T(2)) return T(2) * x;
    return p0 * d_pow(x, p0 - T(1));
  }
  if constexpr (OP == UnaryOp::clamp) return (x >= p0 && x <= p1) ? T(1) : T(0);
  (void)p1;
  return T(1);
}

template <class T, BinaryOp OP> __device__ __forceinline__ T binary_f(T a, T b) {
  if constexpr (OP == BinaryOp::add) return a + b;
  if constexpr (OP == BinaryOp::sub) return a - b;
  if constexpr (OP == BinaryOp::mul) return a * b;
  if constexpr (OP == BinaryOp::div) return a / b;
  if constexpr (OP == BinaryOp::pow) return d_pow(a, b);
  if constexpr (OP == BinaryOp::maximum) return a > b ? a : b;
  if constexpr (OP == BinaryOp::minimum) return a < b ? a : b;
  return a;
}

__device__ __forceinline__ int64_t thread_index() {
  return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// ---- kernels ----

template <class T, UnaryOp OP>
__global__ void unary_kernel1(int64_t n, const T* __restrict__ x, T* __restrict__ y, T p0, T p1, bool vec) {
  constexpr int V = 16 / sizeof(T);
  int64_t start = 0;
  if (vec) {
    const int64_t nv = n / V;
    for (int64_t i = thread_index(); i < nv; i += grid_stride()) {
      Vec<T, V> a = reinterpret_cast<const Vec<T, V>*>(x)[i], r;
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = unary_f<T, OP>(a.v[k], p0, p1);
      reinterpret_cast<Vec<T, V>*>(y)[i] = r;
    }
    start = nv * V;
  }
  for (int64_t i = start + thread_index(); i < n; i += grid_stride()) y[i] = unary_f<T, OP>(x[i], p0, p1);
}

template <class T, UnaryOp OP>
__global__ void unary_bw_kernel1(int64_t n, const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ y,
                                 T* __restrict__ gx, T p0, T p1, bool vec) {
  constexpr int V = 16 / sizeof(T);
  int64_t start = 0;
  if (vec) {
    const int64_t nv = n / V;
    for (int64_t i = thread_index(); i < nv; i += grid_stride()) {
      Vec<T, V> gv = reinterpret_cast<const Vec<T, V>*>(g)[i], xv = reinterpret_cast<const Vec<T, V>*>(x)[i],
                yv = reinterpret_cast<const Vec<T, V>*>(y)[i], r;
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = gv.v[k] * unary_d<T, OP>(xv.v[k], yv.v[k], p0, p1);
      reinterpret_cast<Vec<T, V>*>(gx)[i] = r;
    }
    start = nv * V;
  }
  for (int64_t i = start + thread_index(); i < n; i += grid_stride()) gx[i] = g[i] * unary_d<T, OP>(x[i], y[i], p0, p1);
}

// mode 0: a and b each contiguous or a broadcast scalar (step 1 or 0), vectorized when `vec`;
// mode 1: general broadcast through offsets.
template <class T, BinaryOp OP>
__global__ void binary_kernel1(Offsets<3> o, int64_t n, const T* __restrict__ a, const T* __restrict__ b,
                               T* __restrict__ out, int a_step, int b_step, bool general, bool vec) {
  if (general) {
    for (int64_t i = thread_index(); i < n; i += grid_stride()) {
      int64_t off[3];
      o.at(i, off);
      out[i] = binary_f<T, OP>(a[off[1]], b[off[2]]);
    }
    return;
  }
  constexpr int V = 16 / sizeof(T);
  int64_t start = 0;
  if (vec) {
    const int64_t nv = n / V;
    const T as = a[0], bs = b[0];
    for (int64_t i = thread_index(); i < nv; i += grid_stride()) {
      Vec<T, V> av, bv, r;
      if (a_step) {
        av = reinterpret_cast<const Vec<T, V>*>(a)[i];
      } else {
#pragma unroll
        for (int k = 0; k < V; ++k) av.v[k] = as;
      }
      if (b_step) {
        bv = reinterpret_cast<const Vec<T, V>*>(b)[i];
      } else {
#pragma unroll
        for (int k = 0; k < V; ++k) bv.v[k] = bs;
      }
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = binary_f<T, OP>(av.v[k], bv.v[k]);
      reinterpret_cast<Vec<T, V>*>(out)[i] = r;
    }
    start = nv * V;
  }
  for (int64_t i = start + thread_index(); i < n; i += grid_stride())
    out[i] = binary_f<T, OP>(a[i * a_step], b[i * b_step]);
}

template <class T>
__global__ void compare_kernel1(Offsets<3> o, int64_t n, const T* __restrict__ a, const T* __restrict__ b,
                                uint8_t* __restrict__ out, CompareOp op) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    int64_t off[3];
    o.at(i, off);
    const T x = a[off[1]], y = b[off[2]];
    bool r = false;
    switch (op) {
      case CompareOp::gt: r = x > y; break;
      case CompareOp::lt: r = x < y; break;
      case CompareOp::ge: r = x >= y; break;
      case CompareOp::le: r = x <= y; break;
      case CompareOp::eq: r = x == y; break;
    }
    out[i] = r ? 1 : 0;
  }
}

template <class T>
__global__ void where_kernel1(Offsets<4> o, int64_t n, const uint8_t* __restrict__ c, const T* __restrict__ a,
                              const T* __restrict__ b, T* __restrict__ out) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    int64_t off[4];
    o.at(i, off);
    out[i] = c[off[1]] ? a[off[2]] : b[off[3]];
  }
}

// ---- launchers ----

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <class T, UnaryOp OP> void launch_unary(int64_t n, const void* x, void* y, double p0, double p1) {
  const bool vec = aligned16(x) && aligned16(y);
  const int64_t work = vec ? (n + (16 / sizeof(T)) - 1) / (16 / sizeof(T)) : n;
  unary_kernel1<T, OP><<<grid_for(work, kThreads), kThreads, 0, stream()>>>(
      n, static_cast<const T*>(x), static_cast<T*>(y), static_cast<T>(p0), static_cast<T>(p1), vec);
  SIAM_CUDA_LAUNCH_CHECK();
}

template <class T, UnaryOp OP>
void launch_unary_bw(int64_t n, const void* g, const void* x, const void* y, void* gx, double p0, double p1) {
  const bool vec = aligned16(g) && aligned16(x) && aligned16(y) && aligned16(gx);
  const int64_t work = vec ? (n + (16 / sizeof(T)) - 1) / (16 / sizeof(T)) : n;
  unary_bw_kernel1<T, OP><<<grid_for(work, kThreads), kThreads, 0, stream()>>>(
      n, static_cast<const T*>(g), static_cast<const T*>(x), static_cast<const T*>(y), static_cast<T*>(gx),
      static_cast<T>(p0), static_cast<T>(p1), vec);
  SIAM_CUDA_LAUNCH_CHECK();
}

template <class F> void dispatch_unary(UnaryOp op, F&& f) {
#define SIAM_U(name) \
  case UnaryOp::name: f(std::integral_constant<UnaryOp, UnaryOp::name>{}); break;
  switch (op) {
    SIAM_U(neg)
    SIAM_U(exp) SIAM_U(log) SIAM_U(sqrt) SIAM_U(rsqrt) SIAM_U(abs) SIAM_U(relu) SIAM_U(gelu) SIAM_U(sigmoid)
        SIAM_U(tanh) SIAM_U(sign) SIAM_U(add_scalar) SIAM_U(mul_scalar) SIAM_U(rsub_scalar) SIAM_U(rdiv_scalar)
            SIAM_U(pow_scalar) SIAM_U(clamp)
  }
#undef SIAM_U
}

template <class F> void dispatch_binary(BinaryOp op, F&& f) {
#define SIAM_B(name) \
  case BinaryOp::name: f(std::integral_constant<BinaryOp, BinaryOp::name>{}); break;
  switch (op) { SIAM_B(add) SIAM_B(sub) SIAM_B(mul) SIAM_B(div) SIAM_B(pow) SIAM_B(maximum) SIAM_B(minimum) }
#undef SIAM_B
}

template <class F> void dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    default: SIAM_FAIL(op, " (cuda): expects an f32 or f64 tensor");
  }
}

std::vector<int64_t> contiguous_of(int ndim, const int64_t* shape) {
  std::vector<int64_t> s(static_cast<size_t>(ndim));
  int64_t acc = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    s[static_cast<size_t>(d)] = acc;
    acc *= shape[d];
  }
  return s;
}

}  // namespace

void unary(UnaryOp op, DType dtype, int64_t n, const void* x, void* y, double p0, double p1) {
  if (n == 0) return;
  dispatch_float(dtype, "unary", [&](auto t0) {
    using T = decltype(t0);
    dispatch_unary(op, [&](auto opc) { launch_unary<T, decltype(opc)::value>(n, x, y, p0, p1); });
  });
}

void unary_backward(UnaryOp op, DType dtype, int64_t n, const void* g, const void* x, const void* y, void* gx,
                    double p0, double p1) {
  if (n == 0) return;
  SIAM_CHECK(y != nullptr, "unary_backward (cuda): y is required");
  dispatch_float(dtype, "unary_backward", [&](auto t0) {
    using T = decltype(t0);
    dispatch_unary(op, [&](auto opc) { launch_unary_bw<T, decltype(opc)::value>(n, g, x, y, gx, p0, p1); });
  });
}

void binary(BinaryOp op, DType dtype, int ndim, const int64_t* shape, const void* a, const int64_t* sa, const void* b,
            const int64_t* sb, void* out) {
  SIAM_CHECK(ndim <= kMaxDims, "binary (cuda): at most ", kMaxDims, " dims, got ", ndim);
  const int64_t n = shape_numel(ndim, shape);
  if (n == 0) return;
  auto so = contiguous_of(ndim, shape);
  const int64_t* strides[3] = {so.data(), sa, sb};
  Offsets<3> o = make_offsets<3>(ndim, shape, strides);
  // Each input either walks with the output (stride 1 over the coalesced dim) or is one broadcast value.
  auto step_of = [&](int k) -> int {
    if (o.ndim == 0) return 1;
    if (o.ndim == 1 && o.stride[k][0] == 1) return 1;
    for (int d = 0; d < o.ndim; ++d)
      if (o.stride[k][d] != 0) return -1;
    return 0;
  };
  const int as = step_of(1), bs = step_of(2);
  const bool general = as < 0 || bs < 0;
  dispatch_float(dtype, "binary", [&](auto t0) {
    using T = decltype(t0);
    const bool vec = !general && aligned16(out) && (as == 0 || aligned16(a)) && (bs == 0 || aligned16(b));
    const int64_t work = vec ? (n + (16 / sizeof(T)) - 1) / (16 / sizeof(T)) : n;
    dispatch_binary(op, [&](auto opc) {
      binary_kernel1<T, decltype(opc)::value><<<grid_for(work, kThreads), kThreads, 0, stream()>>>(
          o, n, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), as > 0 ? 1 : 0,
          bs > 0 ? 1 : 0, general, vec);
      SIAM_CUDA_LAUNCH_CHECK();
    });
  });
}

void compare(CompareOp op, DType dtype, int ndim, const int64_t* shape, const void* a, const int64_t* sa, const void* b,
             const int64_t* sb, uint8_t* out) {
  SIAM_CHECK(ndim <= kMaxDims, "compare (cuda): at most ", kMaxDims, " dims, got ", ndim);
  const int64_t n = shape_numel(ndim, shape);
  if (n == 0) return;
  auto so = contiguous_of(ndim, shape);
  const int64_t* strides[3] = {so.data(), sa, sb};
  Offsets<3> o = make_offsets<3>(ndim, shape, strides);
  dispatch_float(dtype, "compare", [&](auto t0) {
    using T = decltype(t0);
    compare_kernel1<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(o, n, static_cast<const T*>(a),
                                                                         static_cast<const T*>(b), out, op);
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

void where(DType dtype, int ndim, const int64_t* shape, const uint8_t* c, const int64_t* sc, const void* a,
           const int64_t* sa, const void* b, const int64_t* sb, void* out) {
  SIAM_CHECK(ndim <= kMaxDims, "where (cuda): at most ", kMaxDims, " dims, got ", ndim);
  const int64_t n = shape_numel(ndim, shape);
  if (n == 0) return;
  auto so = contiguous_of(ndim, shape);
  const int64_t* strides[4] = {so.data(), sc, sa, sb};
  Offsets<4> o = make_offsets<4>(ndim, shape, strides);
  dispatch_float(dtype, "where", [&](auto t0) {
    using T = decltype(t0);
    where_kernel1<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(o, n, c, static_cast<const T*>(a),
                                                                       static_cast<const T*>(b), static_cast<T*>(out));
    SIAM_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace siam::kernels::cuda

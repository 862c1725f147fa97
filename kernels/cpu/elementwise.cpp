#include "kernels/cpu/elementwise.h"

#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/common/fastmath.h"
#include "kernels/cpu/strided.h"

namespace siam::kernels::cpu {

namespace {

// f32 exp, sigmoid and tanh use the branch-free approximations of kernels/common/fastmath.h (<= 1.03 ulp for
// exp), which GCC vectorizes; f64 keeps libm (the f64 paths back the finite-difference gradient checks).
template <class T> inline T exp_t(T x) {
  if constexpr (std::is_same_v<T, float>) return fastmath::exp_f32(x);
  else return std::exp(x);
}
template <class T> inline T sigmoid_t(T x) {
  if constexpr (std::is_same_v<T, float>) return fastmath::sigmoid_f32(x);
  else return T(1) / (T(1) + std::exp(-x));
}
template <class T> inline T tanh_t(T x) {
  if constexpr (std::is_same_v<T, float>) return fastmath::tanh_f32(x);
  else return std::tanh(x);
}

template <class T> inline T gelu_f(T x) { return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440))); }
template <class T> inline T gelu_d(T x) {
  T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
  T pdf = exp_t(T(-0.5) * x * x) * T(0.39894228040143267794);
  return cdf + x * pdf;
}

template <class T, UnaryOp OP>
inline T unary_f(T x, T p0, T p1) {
  if constexpr (OP == UnaryOp::neg) return -x;
  if constexpr (OP == UnaryOp::exp) return exp_t(x);
  if constexpr (OP == UnaryOp::log) return std::log(x);
  if constexpr (OP == UnaryOp::sqrt) return std::sqrt(x);
  if constexpr (OP == UnaryOp::rsqrt) return T(1) / std::sqrt(x);
  if constexpr (OP == UnaryOp::abs) return std::abs(x);
  if constexpr (OP == UnaryOp::relu) return x > T(0) ? x : T(0);
  if constexpr (OP == UnaryOp::gelu) return gelu_f(x);
  if constexpr (OP == UnaryOp::sigmoid) return sigmoid_t(x);
  if constexpr (OP == UnaryOp::tanh) return tanh_t(x);
  if constexpr (OP == UnaryOp::sign) return T((x > T(0)) - (x < T(0)));
  if constexpr (OP == UnaryOp::add_scalar) return x + p0;
  if constexpr (OP == UnaryOp::mul_scalar) return x * p0;
  if constexpr (OP == UnaryOp::rsub_scalar) return p0 - x;
  if constexpr (OP == UnaryOp::rdiv_scalar) return p0 / x;
  if constexpr (OP == UnaryOp::pow_scalar) {
    if (p0 == T(2)) return x * x;
    if (p0 == T(1)) return x;
    return std::pow(x, p0);
  }
  if constexpr (OP == UnaryOp::clamp) return x < p0 ? p0 : (x > p1 ? p1 : x);
  return x;
}

// d y / d x, given x and y = f(x).
template <class T, UnaryOp OP>
inline T unary_d(T x, T y, T p0, T p1) {
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
    return p0 * std::pow(x, p0 - T(1));
  }
  if constexpr (OP == UnaryOp::clamp) return (x >= p0 && x <= p1) ? T(1) : T(0);
  (void)p1;
  return T(1);
}

template <class F>
void dispatch_unary(UnaryOp op, F&& f) {
#define SIAM_U(name) \
  case UnaryOp::name: f(std::integral_constant<UnaryOp, UnaryOp::name>{}); break;
  switch (op) {
    SIAM_U(neg) SIAM_U(exp) SIAM_U(log) SIAM_U(sqrt) SIAM_U(rsqrt) SIAM_U(abs) SIAM_U(relu) SIAM_U(gelu)
    SIAM_U(sigmoid) SIAM_U(tanh) SIAM_U(sign) SIAM_U(add_scalar) SIAM_U(mul_scalar) SIAM_U(rsub_scalar)
    SIAM_U(rdiv_scalar) SIAM_U(pow_scalar) SIAM_U(clamp)
  }
#undef SIAM_U
}

template <class T, BinaryOp OP>
inline T binary_f(T a, T b) {
  if constexpr (OP == BinaryOp::add) return a + b;
  if constexpr (OP == BinaryOp::sub) return a - b;
  if constexpr (OP == BinaryOp::mul) return a * b;
  if constexpr (OP == BinaryOp::div) return a / b;
  if constexpr (OP == BinaryOp::pow) return std::pow(a, b);
  if constexpr (OP == BinaryOp::maximum) return a > b ? a : b;
  if constexpr (OP == BinaryOp::minimum) return a < b ? a : b;
  return a;
}

constexpr int64_t kParallelMin = 32768;

}  // namespace

template <class T>
void unary(UnaryOp op, int64_t n, const T* x, T* y, double p0d, double p1d) {
  const T p0 = static_cast<T>(p0d), p1 = static_cast<T>(p1d);
  dispatch_unary(op, [&](auto opc) {
    constexpr UnaryOp OP = decltype(opc)::value;
    // Plain locals, not the lambda's captures: the OpenMP region would read captures through the closure,
    // and since a store to y[i] may alias a captured float, GCC reloads them each iteration and gives up
    // vectorizing. Read-only locals go into the region by value.
    const int64_t nn = n;
    const T *xs = x, a0 = p0, a1 = p1;
    T* ys = y;
#pragma omp parallel for simd schedule(static) if (nn >= kParallelMin)
    for (int64_t i = 0; i < nn; ++i) ys[i] = unary_f<T, OP>(xs[i], a0, a1);
  });
}

template <class T>
void unary_backward(UnaryOp op, int64_t n, const T* g, const T* x, const T* y, T* gx, double p0d, double p1d) {
  const T p0 = static_cast<T>(p0d), p1 = static_cast<T>(p1d);
  dispatch_unary(op, [&](auto opc) {
    constexpr UnaryOp OP = decltype(opc)::value;
    const int64_t nn = n;  // locals, not captures: see unary()
    const T *gs = g, *xs = x, *ysrc = y, a0 = p0, a1 = p1;
    T* gxs = gx;
    if (ysrc) {
#pragma omp parallel for simd schedule(static) if (nn >= kParallelMin)
      for (int64_t i = 0; i < nn; ++i) gxs[i] = gs[i] * unary_d<T, OP>(xs[i], ysrc[i], a0, a1);
    } else {
#pragma omp parallel for simd schedule(static) if (nn >= kParallelMin)
      for (int64_t i = 0; i < nn; ++i) gxs[i] = gs[i] * unary_d<T, OP>(xs[i], T(0), a0, a1);
    }
  });
}

template <class T>
void binary(BinaryOp op, int ndim, const int64_t* shape, const T* a, const int64_t* sa, const T* b, const int64_t* sb,
            T* out) {
  std::vector<int64_t> so(ndim);
  int64_t acc = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    so[d] = acc;
    acc *= shape[d];
  }
  const int64_t* strides[3] = {so.data(), sa, sb};
  StridedLoop L = make_loop(ndim, shape, 3, strides);
  auto run = [&](auto opc) {
    constexpr BinaryOp OP = decltype(opc)::value;
    for_each_row(L, [&](const int64_t* off, int64_t n, const int64_t* st) {
      T* o = out + off[0];
      const T* pa = a + off[1];
      const T* pb = b + off[2];
      if (st[1] == 1 && st[2] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = binary_f<T, OP>(pa[i], pb[i]);
      } else if (st[1] == 1 && st[2] == 0) {
        const T bv = *pb;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = binary_f<T, OP>(pa[i], bv);
      } else if (st[1] == 0 && st[2] == 1) {
        const T av = *pa;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = binary_f<T, OP>(av, pb[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = binary_f<T, OP>(pa[i * st[1]], pb[i * st[2]]);
      }
    });
  };
  switch (op) {
    case BinaryOp::add: run(std::integral_constant<BinaryOp, BinaryOp::add>{}); break;
    case BinaryOp::sub: run(std::integral_constant<BinaryOp, BinaryOp::sub>{}); break;
    case BinaryOp::mul: run(std::integral_constant<BinaryOp, BinaryOp::mul>{}); break;
    case BinaryOp::div: run(std::integral_constant<BinaryOp, BinaryOp::div>{}); break;
    case BinaryOp::pow: run(std::integral_constant<BinaryOp, BinaryOp::pow>{}); break;
    case BinaryOp::maximum: run(std::integral_constant<BinaryOp, BinaryOp::maximum>{}); break;
    case BinaryOp::minimum: run(std::integral_constant<BinaryOp, BinaryOp::minimum>{}); break;
  }
}

namespace {
std::vector<int64_t> out_strides(int ndim, const int64_t* shape) {
  std::vector<int64_t> so(ndim);
  int64_t acc = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    so[d] = acc;
    acc *= shape[d];
  }
  return so;
}
}  // namespace

template <class T>
void compare(CompareOp op, int ndim, const int64_t* shape, const T* a, const int64_t* sa, const T* b,
             const int64_t* sb, uint8_t* out) {
  auto so = out_strides(ndim, shape);
  const int64_t* strides[3] = {so.data(), sa, sb};
  StridedLoop L = make_loop(ndim, shape, 3, strides);
  for_each_row(L, [&](const int64_t* off, int64_t n, const int64_t* st) {
    uint8_t* o = out + off[0];
    const T* pa = a + off[1];
    const T* pb = b + off[2];
    for (int64_t i = 0; i < n; ++i) {
      T x = pa[i * st[1]], y = pb[i * st[2]];
      bool r = false;
      switch (op) {
        case CompareOp::gt: r = x > y; break;
        case CompareOp::lt: r = x < y; break;
        case CompareOp::ge: r = x >= y; break;
        case CompareOp::le: r = x <= y; break;
        case CompareOp::eq: r = x == y; break;
      }
      o[i] = r ? 1 : 0;
    }
  });
}

template <class T>
void where(int ndim, const int64_t* shape, const uint8_t* c, const int64_t* sc, const T* a, const int64_t* sa,
           const T* b, const int64_t* sb, T* out) {
  auto so = out_strides(ndim, shape);
  const int64_t* strides[4] = {so.data(), sc, sa, sb};
  StridedLoop L = make_loop(ndim, shape, 4, strides);
  for_each_row(L, [&](const int64_t* off, int64_t n, const int64_t* st) {
    T* o = out + off[0];
    const uint8_t* pc = c + off[1];
    const T* pa = a + off[2];
    const T* pb = b + off[3];
    for (int64_t i = 0; i < n; ++i) o[i] = pc[i * st[1]] ? pa[i * st[2]] : pb[i * st[3]];
  });
}

#define SIAM_INST(T)                                                                                         \
  template void unary<T>(UnaryOp, int64_t, const T*, T*, double, double);                                    \
  template void unary_backward<T>(UnaryOp, int64_t, const T*, const T*, const T*, T*, double, double);       \
  template void binary<T>(BinaryOp, int, const int64_t*, const T*, const int64_t*, const T*, const int64_t*, T*); \
  template void compare<T>(CompareOp, int, const int64_t*, const T*, const int64_t*, const T*, const int64_t*,    \
                           uint8_t*);                                                                          \
  template void where<T>(int, const int64_t*, const uint8_t*, const int64_t*, const T*, const int64_t*, const T*, \
                         const int64_t*, T*);
SIAM_INST(float)
SIAM_INST(double)
#undef SIAM_INST

}  // namespace siam::kernels::cpu

// Elementwise CPU kernels: unary (with up to two scalar parameters) and their derivatives, and binary ops
// over broadcast strided operands. Each op's math lives in one switch, shared by forward and backward.
//   unary:    y[i] = f(x[i]; p0, p1)                                     x, y contiguous, n elements
//   unary_bw: gx[i] = g[i] * f'(x[i]; p0, p1)   (uses y[i] where cheaper) all contiguous
//   binary:   out = a (op) b  with broadcast strides (0 on broadcast dims); out contiguous
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

enum class UnaryOp : uint8_t {
  neg, exp, log, sqrt, rsqrt, abs, relu, gelu, sigmoid, tanh, sign,
  add_scalar,   // x + p0
  mul_scalar,   // x * p0
  rsub_scalar,  // p0 - x
  rdiv_scalar,  // p0 / x
  pow_scalar,   // x ^ p0
  clamp,        // min(max(x, p0), p1)
};
enum class BinaryOp : uint8_t { add, sub, mul, div, pow, maximum, minimum };

template <class T> void unary(UnaryOp op, int64_t n, const T* x, T* y, double p0 = 0, double p1 = 0);
template <class T>
void unary_backward(UnaryOp op, int64_t n, const T* g, const T* x, const T* y, T* gx, double p0 = 0, double p1 = 0);

// ndim/shape describe the output; sa/sb are a's and b's element strides over that shape.
template <class T>
void binary(BinaryOp op, int ndim, const int64_t* shape, const T* a, const int64_t* sa, const T* b, const int64_t* sb,
            T* out);

enum class CompareOp : uint8_t { gt, lt, ge, le, eq };
// out (u8, contiguous) = a (cmp) b, broadcast strides as in binary().
template <class T>
void compare(CompareOp op, int ndim, const int64_t* shape, const T* a, const int64_t* sa, const T* b,
             const int64_t* sb, uint8_t* out);
// out (contiguous) = c ? a : b, with broadcast strides for c (u8), a and b.
template <class T>
void where(int ndim, const int64_t* shape, const uint8_t* c, const int64_t* sc, const T* a, const int64_t* sa,
           const T* b, const int64_t* sb, T* out);

}  // namespace siam::kernels::cpu

// CUDA elementwise kernels: the twins of kernels/cpu/elementwise.h (same op enums, same math, f32 and f64).
// Host entry points on device pointers, launched on the current stream (kernels/cuda/stream.h); declared
// without CUDA headers so the engine's front-ends (engine/ops/elementwise.cpp) can call them.
//   unary:    y[i] = f(x[i]; p0, p1)                          x, y contiguous, n elements
//   unary_backward: gx[i] = g[i] * f'(x[i], y[i]; p0, p1)     all contiguous
//   binary:   out = a (op) b over `shape`, a and b with broadcast strides (0 on broadcast dims); out contiguous
//   compare:  out (u8, contiguous) = a (cmp) b, strides as in binary
//   where:    out (contiguous) = c ? a : b, c u8, strides for c, a and b
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"
#include "kernels/cpu/elementwise.h"  // the op enums, shared with the CPU kernels

namespace siam::kernels::cuda {

using cpu::BinaryOp;
using cpu::CompareOp;
using cpu::UnaryOp;

void unary(UnaryOp op, DType dtype, int64_t n, const void* x, void* y, double p0 = 0, double p1 = 0);
void unary_backward(UnaryOp op, DType dtype, int64_t n, const void* g, const void* x, const void* y, void* gx,
                    double p0 = 0, double p1 = 0);
void binary(BinaryOp op, DType dtype, int ndim, const int64_t* shape, const void* a, const int64_t* sa, const void* b,
            const int64_t* sb, void* out);
void compare(CompareOp op, DType dtype, int ndim, const int64_t* shape, const void* a, const int64_t* sa, const void* b,
             const int64_t* sb, uint8_t* out);
void where(DType dtype, int ndim, const int64_t* shape, const uint8_t* c, const int64_t* sc, const void* a,
           const int64_t* sa, const void* b, const int64_t* sb, void* out);

}  // namespace siam::kernels::cuda

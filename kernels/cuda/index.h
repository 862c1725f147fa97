// CUDA index kernels: the twins of kernels/cpu/index.h (same layouts), f32 and f64, indices i64 on the
// device, launched on the current stream. Indices are validated by the callers (engine/ops/shape.cpp).
// Declared without CUDA headers.
//   index_select: out[o, i, j] = x[o, idx[i], j]           x (outer, n_x, inner), out (outer, n_idx, inner)
//   index_add:    gx[o, idx[i], j] += g[o, i, j]           (atomic adds: the order of repeated indices varies)
//   gather:       out[c] = x[c with c_dim = idx[c]]         idx, out contiguous of idx_shape; x strided
//   scatter_add:  out[c with c_dim = idx[c]] += src[c]     out strided, src contiguous of idx_shape (atomic)
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

void index_select(DType dtype, int64_t outer, int64_t n_x, int64_t inner, const void* x, const int64_t* idx,
                  int64_t n_idx, void* out);
void index_add(DType dtype, int64_t outer, int64_t n_x, int64_t inner, void* gx, const int64_t* idx, int64_t n_idx,
               const void* g);
void gather(DType dtype, int ndim, const int64_t* idx_shape, int dim, const void* x, const int64_t* x_strides,
            const int64_t* idx, void* out);
void scatter_add(DType dtype, int ndim, const int64_t* idx_shape, int dim, void* out, const int64_t* out_strides,
                 const int64_t* idx, const void* src);

}  // namespace siam::kernels::cuda

// Index kernels on contiguous data viewed as (outer, n, inner) around the indexed dim.
//   index_select: out[o, i, j] = x[o, idx[i], j]           x (outer, n_x, inner), out (outer, n_idx, inner)
//   index_add:    gx[o, idx[i], j] += g[o, i, j]           (index_select's backward)
//   gather:       out[c] = x[c with c_dim = idx[c]]         idx and out share a shape; x's strides given
//   scatter_add:  out[c with c_dim = idx[c]] += src[c]     out contiguous with x's shape
// Indices are validated by the callers (engine/ops/shape.cpp) before these run.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

template <class T>
void index_select(int64_t outer, int64_t n_x, int64_t inner, const T* x, const int64_t* idx, int64_t n_idx, T* out);
template <class T>
void index_add(int64_t outer, int64_t n_x, int64_t inner, T* gx, const int64_t* idx, int64_t n_idx, const T* g);
// ndim, idx_shape: the index tensor's shape (contiguous); x_strides / out_strides per dim; dim: the indexed dim.
template <class T>
void gather(int ndim, const int64_t* idx_shape, int dim, const T* x, const int64_t* x_strides, const int64_t* idx,
            T* out);
template <class T>
void scatter_add(int ndim, const int64_t* idx_shape, int dim, T* out, const int64_t* out_strides, const int64_t* idx,
                 const T* src);

}  // namespace siam::kernels::cpu

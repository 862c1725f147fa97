#include "kernels/cpu/index.h"

#include <cstring>
#include <vector>

namespace siam::kernels::cpu {

template <class T>
void index_select(int64_t outer, int64_t n_x, int64_t inner, const T* x, const int64_t* idx, int64_t n_idx, T* out) {
#pragma omp parallel for collapse(2) if (outer * n_idx * inner >= 65536)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n_idx; ++i)
      std::memcpy(out + (o * n_idx + i) * inner, x + (o * n_x + idx[i]) * inner, sizeof(T) * inner);
}

template <class T>
void index_add(int64_t outer, int64_t n_x, int64_t inner, T* gx, const int64_t* idx, int64_t n_idx, const T* g) {
  // Parallel over outer only: repeated indices within one outer slice are summed in order.
#pragma omp parallel for if (outer * n_idx * inner >= 65536 && outer > 1)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n_idx; ++i) {
      T* dst = gx + (o * n_x + idx[i]) * inner;
      const T* src = g + (o * n_idx + i) * inner;
      for (int64_t j = 0; j < inner; ++j) dst[j] += src[j];
    }
}

namespace {
// Walks the index tensor's coordinates in row-major order, calling f(linear index, offset with c_dim replaced).
template <class F>
void walk(int ndim, const int64_t* shape, int dim, const int64_t* strides, const int64_t* idx, F&& f) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  std::vector<int64_t> c(ndim, 0);
  for (int64_t e = 0; e < n; ++e) {
    int64_t off = 0;
    for (int d = 0; d < ndim; ++d) off += (d == dim ? idx[e] : c[d]) * strides[d];
    f(e, off);
    for (int d = ndim - 1; d >= 0; --d) {
      if (++c[d] < shape[d]) break;
      c[d] = 0;
    }
  }
}
}  // namespace

template <class T>
void gather(int ndim, const int64_t* idx_shape, int dim, const T* x, const int64_t* x_strides, const int64_t* idx,
            T* out) {
  walk(ndim, idx_shape, dim, x_strides, idx, [&](int64_t e, int64_t off) { out[e] = x[off]; });
}

template <class T>
void scatter_add(int ndim, const int64_t* idx_shape, int dim, T* out, const int64_t* out_strides, const int64_t* idx,
                 const T* src) {
  walk(ndim, idx_shape, dim, out_strides, idx, [&](int64_t e, int64_t off) { out[off] += src[e]; });
}

#define SIAM_INST(T)                                                                                       \
  template void index_select<T>(int64_t, int64_t, int64_t, const T*, const int64_t*, int64_t, T*);          \
  template void index_add<T>(int64_t, int64_t, int64_t, T*, const int64_t*, int64_t, const T*);             \
  template void gather<T>(int, const int64_t*, int, const T*, const int64_t*, const int64_t*, T*);          \
  template void scatter_add<T>(int, const int64_t*, int, T*, const int64_t*, const int64_t*, const T*);
SIAM_INST(float)
SIAM_INST(double)
#undef SIAM_INST

}  // namespace siam::kernels::cpu

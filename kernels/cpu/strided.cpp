#include "kernels/cpu/strided.h"

namespace siam::kernels::cpu {

StridedLoop make_loop(int ndim, const int64_t* shape, int nops, const int64_t* const* strides) {
  StridedLoop L;
  L.nops = nops;
  // Drop size-1 dims, then merge dim d into d+1 where every operand is contiguous across the pair.
  int n = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    L.shape[n] = shape[d];
    for (int k = 0; k < nops; ++k) L.strides[k][n] = strides[k][d];
    ++n;
  }
  int m = 0;
  for (int d = 0; d < n; ++d) {
    if (m > 0) {
      bool merge = true;
      for (int k = 0; k < nops; ++k)
        if (L.strides[k][m - 1] != L.strides[k][d] * L.shape[d]) merge = false;
      if (merge) {
        L.shape[m - 1] *= L.shape[d];
        for (int k = 0; k < nops; ++k) L.strides[k][m - 1] = L.strides[k][d];
        continue;
      }
    }
    L.shape[m] = L.shape[d];
    for (int k = 0; k < nops; ++k) L.strides[k][m] = L.strides[k][d];
    ++m;
  }
  L.ndim = m;
  return L;
}

}  // namespace siam::kernels::cpu

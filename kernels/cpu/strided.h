// N-d strided iteration for CPU kernels: up to 3 operands (element strides), dims coalesced where every
// operand is contiguous across them, the innermost dim walked by the callback, rows split over OpenMP.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

constexpr int kLoopMaxDims = 8;
constexpr int kLoopMaxOps = 4;

struct StridedLoop {
  int ndim = 0;      // after coalescing; 0 means a single element
  int nops = 0;
  int64_t shape[kLoopMaxDims];
  int64_t strides[kLoopMaxOps][kLoopMaxDims];
  int64_t rows() const {
    int64_t r = 1;
    for (int d = 0; d + 1 < ndim; ++d) r *= shape[d];
    return r;
  }
  int64_t inner() const { return ndim == 0 ? 1 : shape[ndim - 1]; }
};

// shape: ndim sizes; strides[k]: ndim strides of operand k.
StridedLoop make_loop(int ndim, const int64_t* shape, int nops, const int64_t* const* strides);

// Element offset of each operand at the start of row r.
inline void row_offsets(const StridedLoop& L, int64_t r, int64_t* off) {
  for (int k = 0; k < L.nops; ++k) off[k] = 0;
  for (int d = L.ndim - 2; d >= 0; --d) {
    int64_t c = r % L.shape[d];
    r /= L.shape[d];
    for (int k = 0; k < L.nops; ++k) off[k] += c * L.strides[k][d];
  }
}

// Calls f(off, n, inner_strides) for every row: off[k] is operand k's element offset of the row start.
template <class F>
void for_each_row(const StridedLoop& L, F&& f) {
  const int64_t rows = L.rows();
  const int64_t n = L.inner();
  int64_t inner_strides[kLoopMaxOps];
  for (int k = 0; k < L.nops; ++k) inner_strides[k] = L.ndim == 0 ? 0 : L.strides[k][L.ndim - 1];
  const bool parallel = rows > 1 && rows * n >= 32768;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off[kLoopMaxOps];
    row_offsets(L, r, off);
    f(off, n, inner_strides);
  }
}

}  // namespace siam::kernels::cpu

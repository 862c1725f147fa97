// N-d strided indexing shared by the CUDA kernels: host-side dim coalescing (dims merged where every operand
// is contiguous across them, as kernels/cpu/strided.h does on the CPU) and a device-side offset calculator
// passed by value in kernel arguments. Internal to kernels/cuda; plain C++ apart from the __host__ __device__
// marks, so tests/cuda/cuda_offsets_test.cpp checks it on the CPU against a direct computation.
#pragma once
#include <cstdint>

#include "kernels/common/macros.h"

namespace siam::kernels::cuda {

constexpr int kMaxDims = 8;

template <int NOPS> struct Offsets {
  int ndim;                 // after coalescing; 0 means one element
  bool small;               // the element count fits in 32 bits: 32-bit division in at()
  int64_t shape[kMaxDims];  // innermost last
  int64_t stride[NOPS][kMaxDims];

  // Element offsets of linear index i (row-major over shape) for every operand. (The loops over the NOPS
  // operands have a constant trip count and are unrolled without a pragma, which the host compiler would not
  // know.)
  SIAM_HD_INLINE void at(int64_t i, int64_t* off) const {
    for (int k = 0; k < NOPS; ++k) off[k] = 0;
    if (small) {
      uint32_t u = static_cast<uint32_t>(i);
      for (int d = ndim - 1; d >= 0; --d) {
        const uint32_t s = static_cast<uint32_t>(shape[d]);
        const uint32_t c = u % s;
        u /= s;
        for (int k = 0; k < NOPS; ++k) off[k] += static_cast<int64_t>(c) * stride[k][d];
      }
      return;
    }
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t s = shape[d];
      const int64_t c = i % s;
      i /= s;
      for (int k = 0; k < NOPS; ++k) off[k] += c * stride[k][d];
    }
  }
};

// Builds Offsets from (ndim, shape) and NOPS stride arrays: size-1 dims dropped, adjacent dims merged where
// every operand's strides allow it.
template <int NOPS> inline Offsets<NOPS> make_offsets(int ndim, const int64_t* shape, const int64_t* const* strides) {
  Offsets<NOPS> o{};
  int n = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    if (n > 0) {
      bool merge = true;
      for (int k = 0; k < NOPS; ++k) merge = merge && strides[k][d] * shape[d] == o.stride[k][n - 1];
      if (merge) {
        o.shape[n - 1] *= shape[d];
        for (int k = 0; k < NOPS; ++k) o.stride[k][n - 1] = strides[k][d];
        continue;
      }
    }
    o.shape[n] = shape[d];
    for (int k = 0; k < NOPS; ++k) o.stride[k][n] = strides[k][d];
    ++n;
  }
  o.ndim = n;
  int64_t total = 1;
  for (int d = 0; d < n; ++d) total *= o.shape[d];
  o.small = total < (int64_t(1) << 32);
  return o;
}

// True when every operand walks the (coalesced) index space with unit stride: a plain linear loop.
template <int NOPS> inline bool is_linear(const Offsets<NOPS>& o) {
  if (o.ndim == 0) return true;
  if (o.ndim > 1) return false;
  for (int k = 0; k < NOPS; ++k)
    if (o.stride[k][0] != 1) return false;
  return true;
}

inline int64_t shape_numel(int ndim, const int64_t* shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

// Grid size for a grid-stride loop over `work` items with `threads` per block (capped; every kernel loops).
inline unsigned grid_for(int64_t work, int threads) {
  int64_t b = (work + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return static_cast<unsigned>(b);
}

}  // namespace siam::kernels::cuda

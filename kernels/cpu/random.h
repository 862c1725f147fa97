// Philox-driven fills. Element i uses the Philox block at counter offset + i (kernels/common/philox.h),
// so the numbers depend only on (seed, stream, offset, i): the CUDA kernels give the same ones.
//   uniform:  lo + (hi - lo) * u,  u = philox_uniform(w0)                 in [lo, hi)
//   normal:   mean + std * sqrt(-2 log u1) cos(2 pi u2), u1 = (0,1] from w0, u2 from w1 (in double)
//   bernoulli_keep: 1 where philox_uniform(w0) >= p, else 0 (dropout's keep mask)
#pragma once
#include <cstdint>

#include "kernels/common/macros.h"
#include "kernels/common/philox.h"

namespace siam::kernels {

// Box-Muller in double on host and device alike (sqrt is correctly rounded on both; log and cos differ by at
// most an ulp of a double), so the f32 results agree between CPU and CUDA to the last bit in all but rare
// double-rounding cases.
SIAM_HD_INLINE double philox_normal(const Philox4& b) {
  double u1 = static_cast<double>(philox_uniform_pos(b.v[0]));
  double u2 = static_cast<double>(philox_uniform(b.v[1]));
#if defined(__CUDA_ARCH__)
  return ::sqrt(-2.0 * ::log(u1)) * ::cospi(2.0 * u2);
#else
  return __builtin_sqrt(-2.0 * __builtin_log(u1)) * __builtin_cos(6.283185307179586 * u2);
#endif
}

namespace cpu {
template <class T> void fill_uniform(int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, T* out, double lo, double hi);
template <class T> void fill_normal(int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, T* out, double mean, double std);
void bernoulli_keep(int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double p, uint8_t* out);
}  // namespace cpu

}  // namespace siam::kernels

// Bit views of an f32, the same on host and device (used by the half-precision conversions and fastmath).
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/common/macros.h"

namespace siam {

SIAM_HD_INLINE uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
SIAM_HD_INLINE float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

}  // namespace siam

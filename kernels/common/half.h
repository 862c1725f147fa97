// bf16 and f16 storage types and their conversions to and from f32, bit-exact on host and device.
// Conversion to the narrow type rounds to nearest even; NaN stays NaN, overflow becomes infinity.
#pragma once
#include <cstdint>

#include "kernels/common/bits.h"
#include "kernels/common/macros.h"

namespace siam {

// ---- bfloat16: the top 16 bits of an f32 ----
SIAM_HD_INLINE uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}
SIAM_HD_INLINE float bf16_bits_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

// ---- IEEE binary16 ----
SIAM_HD_INLINE uint16_t f32_to_f16_bits(float f) {
  uint32_t x = f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow (rounds past 65504) or inf
  if (ax < 0x38800000u) {                                               // subnormal or zero in f16
    if (ax < 0x33000000u) return static_cast<uint16_t>(sign);           // below half the smallest subnormal
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e;  // 14 + (113 - e) ... places the value at 2^-24 units
    uint32_t r = m >> (shift - 0u);
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    // m * 2^(e-150) / 2^-24 = m >> (126 - e)
    if (rem > halfway || (rem == halfway && (r & 1u))) r += 1u;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = ((ax - 0x38000000u) >> 13);  // rebias exponent 127 -> 15
  uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r += 1u;
  return static_cast<uint16_t>(sign | r);
}
SIAM_HD_INLINE float f16_bits_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0) {
    if (m == 0) return f32_from_bits(sign);
    // subnormal: value = m * 2^-24
    float v = static_cast<float>(m) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  if (e == 31) return f32_from_bits(sign | 0x7f800000u | (m << 13));
  return f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

// Storage-only value types. Arithmetic happens in f32.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  SIAM_HD explicit bf16(float f) : bits(f32_to_bf16_bits(f)) {}
  SIAM_HD explicit operator float() const { return bf16_bits_to_f32(bits); }
};
struct f16 {
  uint16_t bits = 0;
  f16() = default;
  SIAM_HD explicit f16(float f) : bits(f32_to_f16_bits(f)) {}
  SIAM_HD explicit operator float() const { return f16_bits_to_f32(bits); }
};

}  // namespace siam

// The emulator's stand-in for the toolkit's cuda_bf16.h (see kernels/emu/simt.h): __nv_bfloat16 and the
// conversions siam's kernels use, rounding to nearest even as the device does (kernels/common/half.h).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/common/half.h"

struct __nv_bfloat16 {
  uint16_t x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : x(siam::f32_to_bf16_bits(f)) {}  // NOLINT: implicit, as the toolkit's type
  operator float() const { return siam::bf16_bits_to_f32(x); }
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};

inline float __bfloat162float(__nv_bfloat16 v) { return siam::bf16_bits_to_f32(v.x); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  __nv_bfloat16 r;
  r.x = siam::f32_to_bf16_bits(f);
  return r;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
// Rounded once, from the double (the nearest of the float estimate's neighbours; ties to the even one).
inline __nv_bfloat16 __double2bfloat16(double v) {
  __nv_bfloat16 r = __float2bfloat16_rn(static_cast<float>(v));
  if (!std::isfinite(v)) return r;
  double best = std::fabs(static_cast<double>(__bfloat162float(r)) - v);
  for (int d : {-1, 1}) {
    __nv_bfloat16 c;
    c.x = static_cast<uint16_t>(r.x + d);
    const float cf = __bfloat162float(c);
    if (!std::isfinite(cf) || (cf < 0) != (__bfloat162float(r) < 0)) continue;
    const double e = std::fabs(static_cast<double>(cf) - v);
    if (e < best || (e == best && (c.x & 1) == 0)) {
      best = e;
      r = c;
    }
  }
  return r;
}
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return float2{__bfloat162float(v.x), __bfloat162float(v.y)}; }

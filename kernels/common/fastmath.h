// Vectorizable f32 transcendental functions, shared by host and device code.
//
//   exp_f32(x)      e^x, max error 1.03 ulp over all floats (checked exhaustively: tests/unit/fastmath_test.cpp)
//   sigmoid_f32(x)  1 / (1 + e^-x), computed as e^x / (1 + e^x) for x < 0
//   tanh_f32(x)     odd polynomial for |x| < 0.625, else 1 - 2 / (e^{2|x|} + 1), sign restored
//
// Why: glibc's scalar expf is a function call GCC cannot vectorize, and its vector variant (libmvec) is only
// declared under -ffast-math, which siam does not use globally. These functions have no branches (every
// special case is a select) and no calls, so GCC vectorizes them inside `#pragma omp simd` loops.
//
// exp_f32 method (Cephes expf, S. Moshier): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, with ln2 split
// into a 9-bit head (so n * head is exact) and a tail; e^r = 1 + r + r^2 P(r), P a degree-5 minimax
// polynomial; 2^n built from bits. 2^n is applied as two factors 2^(n/2) * 2^(n - n/2), each a normal float,
// so the result rounds once even where it is subnormal or overflows: subnormal results are computed, not
// flushed, and overflow to +inf (x > 88.7228) and underflow to 0 (x < -103.972) fall out of the arithmetic.
// Special values: NaN -> NaN, +inf -> +inf, -inf -> 0. Assumes round-to-nearest (the default FP mode).
#pragma once
#include <cstdint>

#include "kernels/common/bits.h"
#include "kernels/common/macros.h"

namespace siam::fastmath {

SIAM_HD_INLINE float exp_f32(float x) {
  // Clamp (selects, NaN passes through both): beyond these bounds the result is already inf or 0 and n stays
  // small enough for the two-factor scaling below.
  x = x > 89.0f ? 89.0f : x;
  x = x < -104.0f ? -104.0f : x;
  // n = round(x / ln2): adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits of t.
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  const float t = x * 1.44269504088896341f + kMagic;
  const float n = t - kMagic;
  const int32_t ni = static_cast<int32_t>(f32_bits(t) - f32_bits(kMagic));  // n as an integer, |n| <= 151
  // r = x - n ln2 (Cody-Waite: 0.693359375 has 9 significant bits, so n * it is exact)
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // e^r = 1 + r + r^2 P(r) on [-ln2/2, ln2/2]
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = (p * r) * r + r + 1.0f;
  // 2^n = 2^h * 2^(n-h), h = floor(n / 2): both factors are normal floats for -151 <= n <= 130.
  const int32_t h = ni >> 1;
  const float s1 = f32_from_bits(static_cast<uint32_t>(h + 127) << 23);
  const float s2 = f32_from_bits(static_cast<uint32_t>(ni - h + 127) << 23);
  return (er * s1) * s2;  // er * s1 is exact (normal result); the second product rounds once
}

// With e = e^-|x|: 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0. Never overflows, so sigmoid(x) ~ e^x stays
// accurate (and subnormal rather than 0) down to x = -103.9, where 1 / (1 + e^-x) would already give 0.
SIAM_HD_INLINE float sigmoid_f32(float x) {
  const float e = exp_f32(-f32_from_bits(f32_bits(x) & 0x7fffffffu));
  const float r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : e * r;
}

// tanh: for |x| < 0.625 the Cephes tanhf polynomial x + x^3 Q(x^2) (1 - e^-2x would cancel there); beyond,
// 1 - 2 / (e^{2|x|} + 1), which reaches exactly 1 once e^{2|x|} overflows. Sign restored from x's bits.
SIAM_HD_INLINE float tanh_f32(float x) {
  const float a = f32_from_bits(f32_bits(x) & 0x7fffffffu);
  const float z = a * a;
  float q = -5.70498872745e-3f;
  q = q * z + 2.06390887954e-2f;
  q = q * z - 5.37397155531e-2f;
  q = q * z + 1.33314422036e-1f;
  q = q * z - 3.33332819422e-1f;
  const float small = (q * z) * a + a;
  const float large = 1.0f - 2.0f / (exp_f32(2.0f * a) + 1.0f);
  const float y = a < 0.625f ? small : large;
  return f32_from_bits(f32_bits(y) | (f32_bits(x) & 0x80000000u));
}

}  // namespace siam::fastmath

// Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the one
// counter-based generator of siam. Host and device compute the same numbers for the same
// (seed, stream, offset): the key is the 64-bit seed, the counter is (offset lo, offset hi, stream lo,
// stream hi). Element i of a draw that starts at `offset` uses counter offset + i and takes the words it
// needs from that block, so results do not depend on how the work is split across threads or devices.
#pragma once
#include <cstdint>

#include "kernels/common/macros.h"

namespace siam {

struct Philox4 {
  uint32_t v[4];
};

SIAM_HD_INLINE void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

SIAM_HD_INLINE Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(M0, ctr.v[0], hi0, lo0);
    philox_mulhilo(M1, ctr.v[2], hi1, lo1);
    Philox4 n;
    n.v[0] = hi1 ^ ctr.v[1] ^ k0;
    n.v[1] = lo1;
    n.v[2] = hi0 ^ ctr.v[3] ^ k1;
    n.v[3] = lo0;
    ctr = n;
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// The block of 4 random words for (seed, stream, counter).
SIAM_HD_INLINE Philox4 philox_block(uint64_t seed, uint64_t stream, uint64_t counter) {
  Philox4 c;
  c.v[0] = static_cast<uint32_t>(counter);
  c.v[1] = static_cast<uint32_t>(counter >> 32);
  c.v[2] = static_cast<uint32_t>(stream);
  c.v[3] = static_cast<uint32_t>(stream >> 32);
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in [0, 1) with 24 random bits, so it is exactly representable in f32.
SIAM_HD_INLINE float philox_uniform(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
// Uniform in (0, 1], safe for log().
SIAM_HD_INLINE float philox_uniform_pos(uint32_t w) {
  return (static_cast<float>(w >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

}  // namespace siam

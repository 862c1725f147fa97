// Philox 4x32-10 against the known-answer vectors of Random123, and the reproducibility contract.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/core/random.h"
#include "kernels/common/philox.h"

namespace siam {
namespace {

TEST(Philox, KnownAnswerVectors) {
  // Random123 kat_vectors: philox4x32 10 rounds
  Philox4 z = philox4x32_10({{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(z.v[0], 0x6627e8d5u);
  EXPECT_EQ(z.v[1], 0xe169c58du);
  EXPECT_EQ(z.v[2], 0xbc57ac4cu);
  EXPECT_EQ(z.v[3], 0x9b00dbd8u);
  Philox4 f = philox4x32_10({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(f.v[0], 0x408f276du);
  EXPECT_EQ(f.v[1], 0x41c83b0eu);
  EXPECT_EQ(f.v[2], 0xa20bc7c6u);
  EXPECT_EQ(f.v[3], 0x6d5451fdu);
  Philox4 p = philox4x32_10({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(p.v[0], 0xd16cfe09u);
  EXPECT_EQ(p.v[1], 0x94fdccebu);
  EXPECT_EQ(p.v[2], 0x5001e420u);
  EXPECT_EQ(p.v[3], 0x24126ea1u);
}

TEST(Random, SameSeedSameNumbers) {
  manual_seed(42);
  auto a = randn({1000}).to_vector<float>();
  auto b = rand({10}).to_vector<float>();
  manual_seed(42);
  EXPECT_EQ(randn({1000}).to_vector<float>(), a);
  EXPECT_EQ(rand({10}).to_vector<float>(), b);
  // a draw is the same as the corresponding part of a larger draw: element i uses counter offset + i
  Generator g1(7), g2(7);
  auto big = rand({200000}, g1).to_vector<float>();  // parallel fill
  auto small = rand({100}, g2).to_vector<float>();
  for (int i = 0; i < 100; ++i) ASSERT_EQ(big[i], small[i]);
}

TEST(Random, Moments) {
  Generator g(3);
  auto u = rand({200000}, g).to_vector<double>();
  auto n = randn({200000}, g).to_vector<double>();
  double mu = 0, mn = 0, vn = 0, lo = 1, hi = 0;
  for (double x : u) {
    mu += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  for (double x : n) mn += x;
  mu /= u.size();
  mn /= n.size();
  for (double x : n) vn += (x - mn) * (x - mn);
  vn /= n.size();
  EXPECT_NEAR(mu, 0.5, 0.005);
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_NEAR(mn, 0.0, 0.01);
  EXPECT_NEAR(vn, 1.0, 0.01);
}

}  // namespace
}  // namespace siam

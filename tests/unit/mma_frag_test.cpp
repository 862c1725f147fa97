// The bf16 tensor-core fragments of kernels/common/mma_frag.h (used by kernels/cuda/infonce.cu's kernel2), checked
// on the CPU against an emulation of mma.sync.m16n8k16 written from the PTX ISA's element tables ("Matrix
// Fragments for mma.m16n8k16 with floating point type": a_i, b_i, c_i indexed by element, i = 2 register + half),
// independently of the helpers: the S = X Y^T tile product from staged tiles, the reuse of the C fragments as
// the A operand of P Y, and Y read as the B operand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/common/half.h"
#include "kernels/common/mma_frag.h"

namespace siam {
namespace {

namespace mma = kernels::mma;

// The PTX tables, element by element (groupID = lane >> 2, threadID_in_group = lane % 4).
int ptx_a_row(int lane, int i) { return (lane >> 2) + ((i < 2 || (i >= 4 && i < 6)) ? 0 : 8); }
int ptx_a_col(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i >= 4 ? 8 : 0); }
int ptx_b_row(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i >= 2 ? 8 : 0); }
int ptx_b_col(int lane) { return lane >> 2; }
int ptx_c_row(int lane, int i) { return (lane >> 2) + (i >= 2 ? 8 : 0); }
int ptx_c_col(int lane, int i) { return (lane % 4) * 2 + (i & 1); }

float half_of(uint32_t reg, int h) { return bf16_bits_to_f32(static_cast<uint16_t>(h ? reg >> 16 : reg & 0xffffu)); }

// One warp's mma.sync m16n8k16: c[lane] += A B with A, B assembled from the lanes' registers by the PTX tables.
void emulate_mma(float (&c)[32][4], const uint32_t (&a)[32][4], const uint32_t (&b)[32][2]) {
  float A[16][16] = {}, B[16][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) A[ptx_a_row(lane, i)][ptx_a_col(lane, i)] = half_of(a[lane][i / 2], i % 2);
    for (int i = 0; i < 4; ++i) B[ptx_b_row(lane, i)][ptx_b_col(lane)] = half_of(b[lane][i / 2], i % 2);
  }
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      const int r = ptx_c_row(lane, i), n = ptx_c_col(lane, i);
      float s = 0;
      for (int k = 0; k < 16; ++k) s += A[r][k] * B[k][n];
      c[lane][i] += s;
    }
}

std::vector<uint16_t> random_bf16(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_bf16_bits(u(gen));
  return v;
}

TEST(MmaFragments, HelpersFollowThePtxTables) {
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(mma::a_row(lane, i / 2), ptx_a_row(lane, i)) << "lane " << lane << " a" << i;
      EXPECT_EQ(mma::a_col(lane, i / 2) + i % 2, ptx_a_col(lane, i)) << "lane " << lane << " a" << i;
    }
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(mma::b_k(lane, i / 2) + i % 2, ptx_b_row(lane, i)) << "lane " << lane << " b" << i;
      EXPECT_EQ(mma::b_n(lane), ptx_b_col(lane));
      EXPECT_EQ(mma::c_row(lane, i), ptx_c_row(lane, i)) << "lane " << lane << " c" << i;
      EXPECT_EQ(mma::c_col(lane, i), ptx_c_col(lane, i)) << "lane " << lane << " c" << i;
    }
  }
}

// S (16 x 8 n-blocks) = X Y^T over DP features from tiles staged with row stride DP + 8, as the kernel's
// warp_logits: load_a per k-step, load_b_nmajor per n-block.
TEST(MmaFragments, LogitsFromStagedTilesEqualXYTranspose) {
  constexpr int DP = 64, LD = DP + 8, NCOLS = 64;
  const auto xs = random_bf16(16 * LD, 1), ys = random_bf16(NCOLS * LD, 2);
  float s[8][32][4] = {};
  for (int ks = 0; ks < DP / 16; ++ks) {
    uint32_t a[32][4];
    for (int lane = 0; lane < 32; ++lane) mma::load_a(a[lane], xs.data(), LD, ks * 16, lane);
    for (int nb = 0; nb < 8; ++nb) {
      uint32_t b[32][2];
      for (int lane = 0; lane < 32; ++lane) mma::load_b_nmajor(b[lane], ys.data(), LD, nb * 8, ks * 16, lane);
      emulate_mma(s[nb], a, b);
    }
  }
  double worst = 0;
  for (int nb = 0; nb < 8; ++nb)
    for (int lane = 0; lane < 32; ++lane)
      for (int e = 0; e < 4; ++e) {
        const int i = mma::c_row(lane, e), j = nb * 8 + mma::c_col(lane, e);
        double want = 0;
        for (int k = 0; k < DP; ++k)
          want += double(bf16_bits_to_f32(xs[i * LD + k])) * bf16_bits_to_f32(ys[j * LD + k]);
        worst = std::max(worst, std::abs(s[nb][lane][e] - want));
      }
  EXPECT_LT(worst, 1e-5);
}

// acc (16 x DP) += P Y with P (16 x 64) held as C fragments (c_to_a, rounded to bf16) and Y (64 x DP) read in place
// from the staged tile (load_b_kmajor), as the kernel's gradient pass.
TEST(MmaFragments, ProbabilitiesTimesYFromRegistersEqualPY) {
  constexpr int DP = 64, LD = DP + 8, ND = DP / 8;
  const auto ys = random_bf16(64 * LD, 3);
  std::mt19937 gen(4);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  float p[8][32][4];  // P as C fragments of 8 n-blocks
  float P[16][64];
  for (int nb = 0; nb < 8; ++nb)
    for (int lane = 0; lane < 32; ++lane)
      for (int e = 0; e < 4; ++e) {
        p[nb][lane][e] = u(gen);
        P[mma::c_row(lane, e)][nb * 8 + mma::c_col(lane, e)] = bf16_bits_to_f32(f32_to_bf16_bits(p[nb][lane][e]));
      }
  float acc[ND][32][4] = {};
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t a[32][4];
    for (int lane = 0; lane < 32; ++lane) mma::c_to_a(a[lane], p[2 * kk][lane], p[2 * kk + 1][lane]);
    for (int nd = 0; nd < ND; ++nd) {
      uint32_t b[32][2];
      for (int lane = 0; lane < 32; ++lane) mma::load_b_kmajor(b[lane], ys.data(), LD, nd * 8, kk * 16, lane);
      emulate_mma(acc[nd], a, b);
    }
  }
  double worst = 0;
  for (int nd = 0; nd < ND; ++nd)
    for (int lane = 0; lane < 32; ++lane)
      for (int e = 0; e < 4; ++e) {
        const int i = mma::c_row(lane, e), d = nd * 8 + mma::c_col(lane, e);
        double want = 0;
        for (int j = 0; j < 64; ++j) want += double(P[i][j]) * bf16_bits_to_f32(ys[j * LD + d]);
        worst = std::max(worst, std::abs(acc[nd][lane][e] - want));
      }
  EXPECT_LT(worst, 1e-5);
}

TEST(MmaFragments, PackRoundsToNearestEvenWithTheFirstValueLow) {
  const uint32_t r = mma::pack_bf16(1.0f, -2.0f);
  EXPECT_EQ(half_of(r, 0), 1.0f);
  EXPECT_EQ(half_of(r, 1), -2.0f);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1)
  EXPECT_EQ(half_of(mma::pack_bf16(1.0f + 1.0f / 256.0f, 0.f), 0), 1.0f);
}

}  // namespace
}  // namespace siam

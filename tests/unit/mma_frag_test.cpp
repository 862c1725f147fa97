// The bf16 tensor-core fragments of kernels/common/mma_frag.h (used by kernels/cuda/infonce.cu's kernel2), checked
// on the CPU against an emulation of mma.sync.m16n8k16 written from the PTX ISA's element tables ("Matrix
// Fragments for mma.m16n8k16 with floating point type": a_i, b_i, c_i indexed by element, i = 2 register + half),
// independently of the helpers: the S = X Y^T tile product from staged tiles, the reuse of the C fragments as
// the A operand of P Y, and Y read as the B operand; then one warp of kernel2 end to end (its loads, the shared
// epilogues of kernels/common/infonce_tc_math.h, the quad merge) against a direct computation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/common/half.h"
#include "kernels/common/infonce_tc_math.h"
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

// One warp of infonce_lse_kernel2 / infonce_grad_kernel2 (16 rows; the kernel's steps, lane by lane) over
// `cols` columns of y in 64-column tiles, the self form (x = y, the diagonal masked), features D padded to DP.
struct WarpCase {
  static constexpr int DP = 64, LD = DP + 8;
  int64_t rows, cols, D;
  std::vector<uint16_t> y;  // (cols, DP) bf16, zeros past D; x is its first rows
  float inv_t;
};

// S tile [j0, j0 + 64) of the warp's rows as C fragments, from tiles staged as the kernel stages them.
void warp_tile(const WarpCase& w, int64_t j0, std::vector<uint16_t>& ys, float (&s)[8][32][4]) {
  std::vector<uint16_t> xs(16 * WarpCase::LD, 0);
  for (int64_t r = 0; r < 16 && r < w.rows; ++r)
    for (int k = 0; k < WarpCase::DP; ++k) xs[r * WarpCase::LD + k] = w.y[r * WarpCase::DP + k];
  ys.assign(64 * WarpCase::LD, 0);
  for (int64_t r = 0; r < 64 && j0 + r < w.cols; ++r)
    for (int k = 0; k < WarpCase::DP; ++k) ys[r * WarpCase::LD + k] = w.y[(j0 + r) * WarpCase::DP + k];
  for (auto& nb : s)
    for (auto& lane : nb)
      for (float& v : lane) v = 0.f;
  for (int ks = 0; ks < WarpCase::DP / 16; ++ks) {
    uint32_t a[32][4];
    for (int lane = 0; lane < 32; ++lane) mma::load_a(a[lane], xs.data(), WarpCase::LD, ks * 16, lane);
    for (int nb = 0; nb < 8; ++nb) {
      uint32_t b[32][2];
      for (int lane = 0; lane < 32; ++lane) mma::load_b_nmajor(b[lane], ys.data(), WarpCase::LD, nb * 8, ks * 16, lane);
      emulate_mma(s[nb], a, b);
    }
  }
}

std::vector<float> emulate_warp_lse(const WarpCase& w) {
  OnlineLse<float> st[32][2];
  int64_t mc[32][2];
  for (int lane = 0; lane < 32; ++lane)
    for (int h = 0; h < 2; ++h) {
      const int64_t i = mma::group(lane) + 8 * h;
      st[lane][h] = online_lse_empty<float>();
      mc[lane][h] = i < w.rows ? i : -1;
    }
  std::vector<uint16_t> ys;
  for (int64_t j0 = 0; j0 < w.cols; j0 += 64) {
    float s[8][32][4];
    warp_tile(w, j0, ys, s);
    for (int lane = 0; lane < 32; ++lane) {
      float sl[8][4];
      for (int nb = 0; nb < 8; ++nb)
        for (int e = 0; e < 4; ++e) sl[nb][e] = s[nb][lane][e];
      kernels::tc::lse_update(st[lane], sl, j0, w.cols, mc[lane], w.inv_t, lane);
    }
  }
  for (int o = 1; o <= 2; o <<= 1) {  // __shfl_xor_sync over the quad, all lanes at once
    OnlineLse<float> next[32][2];
    for (int lane = 0; lane < 32; ++lane)
      for (int h = 0; h < 2; ++h) next[lane][h] = online_lse_merge(st[lane][h], st[lane ^ o][h]);
    for (int lane = 0; lane < 32; ++lane)
      for (int h = 0; h < 2; ++h) st[lane][h] = next[lane][h];
  }
  std::vector<float> lse(static_cast<size_t>(w.rows));
  for (int lane = 0; lane < 32; lane += 4)
    for (int h = 0; h < 2; ++h) {
      const int64_t i = mma::group(lane) + 8 * h;
      if (i < w.rows) lse[static_cast<size_t>(i)] = st[lane][h].m + std::log(st[lane][h].s);
    }
  return lse;
}

// dx (rows, D) / scale: sum_j (exp(S_ij / t - lse_i) + exp(S_ij / t - lse_j)) y_j, the self form's row pass.
std::vector<float> emulate_warp_grad(const WarpCase& w, const std::vector<float>& lse) {
  constexpr int ND = WarpCase::DP / 8;
  float acc[ND][32][4] = {};
  std::vector<uint16_t> ys;
  for (int64_t j0 = 0; j0 < w.cols; j0 += 64) {
    float s[8][32][4];
    warp_tile(w, j0, ys, s);
    float p[8][32][4];
    for (int lane = 0; lane < 32; ++lane) {
      const int64_t r[2] = {mma::group(lane), mma::group(lane) + 8};
      const int64_t mc[2] = {r[0] < w.rows ? r[0] : -1, r[1] < w.rows ? r[1] : -1};
      const float inf = std::numeric_limits<float>::infinity();
      const float ai[2] = {r[0] < w.rows ? lse[static_cast<size_t>(r[0])] : inf,
                           r[1] < w.rows ? lse[static_cast<size_t>(r[1])] : inf};
      float sl[8][4];
      for (int nb = 0; nb < 8; ++nb)
        for (int e = 0; e < 4; ++e) sl[nb][e] = s[nb][lane][e];
      kernels::tc::probabilities(sl, j0, w.cols, r, w.rows, mc, ai, lse.data(), w.inv_t, lane);
      for (int nb = 0; nb < 8; ++nb)
        for (int e = 0; e < 4; ++e) p[nb][lane][e] = sl[nb][e];
    }
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[32][4];
      for (int lane = 0; lane < 32; ++lane) mma::c_to_a(a[lane], p[2 * kk][lane], p[2 * kk + 1][lane]);
      for (int nd = 0; nd < ND; ++nd) {
        uint32_t b[32][2];
        for (int lane = 0; lane < 32; ++lane) mma::load_b_kmajor(b[lane], ys.data(), WarpCase::LD, nd * 8, kk * 16, lane);
        emulate_mma(acc[nd], a, b);
      }
    }
  }
  std::vector<float> dx(static_cast<size_t>(w.rows * w.D), 0.f);
  for (int nd = 0; nd < ND; ++nd)
    for (int lane = 0; lane < 32; ++lane)
      for (int e = 0; e < 4; ++e) {
        const int64_t i = mma::c_row(lane, e), d = nd * 8 + mma::c_col(lane, e);
        if (i < w.rows && d < w.D) dx[static_cast<size_t>(i * w.D + d)] = acc[nd][lane][e];
      }
  return dx;
}

TEST(MmaFragments, OneWarpOfKernel2MatchesTheDirectSelfFormLseAndGradient) {
  for (const int64_t rows : {int64_t(16), int64_t(11)})
    for (const int64_t cols : {int64_t(16), int64_t(150)}) {  // one ragged tile; three tiles, the last ragged
      if (cols < rows) continue;
      WarpCase w;
      w.rows = rows, w.cols = cols, w.D = 40, w.inv_t = 1.f / 0.2f;
      // normalized rows in bf16, zeros past D
      std::mt19937 gen(static_cast<uint32_t>(rows * 1000 + cols));
      std::normal_distribution<float> nd;
      w.y.assign(static_cast<size_t>(cols * WarpCase::DP), 0);
      for (int64_t j = 0; j < cols; ++j) {
        std::vector<float> v(static_cast<size_t>(w.D));
        float n2 = 0;
        for (float& x : v) x = nd(gen), n2 += x * x;
        for (int64_t k = 0; k < w.D; ++k)
          w.y[static_cast<size_t>(j * WarpCase::DP + k)] = f32_to_bf16_bits(v[static_cast<size_t>(k)] / std::sqrt(n2));
      }
      auto Y = [&](int64_t j, int64_t k) { return double(bf16_bits_to_f32(w.y[static_cast<size_t>(j * WarpCase::DP + k)])); };
      auto S = [&](int64_t i, int64_t j) {
        double s = 0;
        for (int64_t k = 0; k < w.D; ++k) s += Y(i, k) * Y(j, k);
        return s * w.inv_t;
      };
      // lse over every column but the row's own; the warp's rows are the first `rows` columns
      std::vector<double> want_lse(static_cast<size_t>(cols));
      for (int64_t i = 0; i < cols; ++i) {
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < cols; ++j)
          if (j != i) mx = std::max(mx, S(i, j));
        for (int64_t j = 0; j < cols; ++j)
          if (j != i) sum += std::exp(S(i, j) - mx);
        want_lse[static_cast<size_t>(i)] = mx + std::log(sum);
      }
      const std::vector<float> lse = emulate_warp_lse(w);
      for (int64_t i = 0; i < rows; ++i)
        EXPECT_NEAR(lse[static_cast<size_t>(i)], want_lse[static_cast<size_t>(i)], 1e-4)
            << "lse row " << i << ", rows " << rows << " cols " << cols;
      // the gradient pass with every column's lse (as the self form passes lse for both a and b)
      std::vector<float> all_lse(want_lse.begin(), want_lse.end());
      const std::vector<float> dx = emulate_warp_grad(w, all_lse);
      double worst = 0, scale = 0;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t d = 0; d < w.D; ++d) {
          double want = 0;
          for (int64_t j = 0; j < cols; ++j)
            if (j != i)
              want += (std::exp(S(i, j) - want_lse[static_cast<size_t>(i)]) +
                       std::exp(S(i, j) - want_lse[static_cast<size_t>(j)])) * Y(j, d);
          worst = std::max(worst, std::abs(dx[static_cast<size_t>(i * w.D + d)] - want));
          scale = std::max(scale, std::abs(want));
        }
      EXPECT_LT(worst / scale, 1e-2) << "gradient, rows " << rows << " cols " << cols;  // P rounded to bf16
    }
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

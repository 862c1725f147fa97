// mixup: the Beta draws of lambda, the permutation, and the blend against the formula.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "engine/data/mixup.h"
#include "engine/data/views.h"

namespace siam {
namespace {

TEST(Mixup, BlendsWithThePermutedBatch) {
  // x: (4, 2, 3) with distinct values
  std::vector<double> vals(24);
  std::iota(vals.begin(), vals.end(), 1.0);
  Tensor x = from_vector(vals, {4, 2, 3});
  data::MixupResult r = data::mixup(x, 0.4, 11, 2, 5);
  ASSERT_EQ(r.mixed.shape(), x.shape());
  ASSERT_EQ(r.perm.shape(), (Shape{4}));
  EXPECT_GE(r.lambda, 0.0);
  EXPECT_LE(r.lambda, 1.0);
  auto perm = r.perm.to_vector<int64_t>();
  auto sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3}));
  auto m = r.mixed.to_vector<float>();
  const float l = static_cast<float>(r.lambda);
  for (int i = 0; i < 4; ++i)
    for (int t = 0; t < 6; ++t) {
      const double expect = l * vals[static_cast<size_t>(i * 6 + t)] +
                            (1 - l) * vals[static_cast<size_t>(perm[static_cast<size_t>(i)] * 6 + t)];
      EXPECT_NEAR(m[static_cast<size_t>(i * 6 + t)], expect, 1e-4) << i << "," << t;
    }
  // deterministic in (seed, epoch, step); another step changes lambda
  data::MixupResult again = data::mixup(x, 0.4, 11, 2, 5);
  EXPECT_EQ(again.lambda, r.lambda);
  EXPECT_EQ(again.perm.to_vector<int64_t>(), perm);
  EXPECT_NE(data::mixup(x, 0.4, 11, 2, 6).lambda, r.lambda);
  // a hand-made permutation and lambda
  data::MixupParams p{{1, 0, 3, 2}, 0.25};
  auto h = data::mixup_apply(x, p).to_vector<float>();
  EXPECT_NEAR(h[0], 0.25 * 1 + 0.75 * 7, 1e-5);
  EXPECT_NEAR(h[6], 0.25 * 7 + 0.75 * 1, 1e-5);
  // a non-contiguous input is read through its strides
  Tensor xt = x.transpose(1, 2);
  auto ht = data::mixup_apply(xt, p);
  EXPECT_EQ(ht.shape(), (Shape{4, 3, 2}));
  EXPECT_NEAR(ht.to_vector<float>()[1], 0.25 * 4 + 0.75 * 10, 1e-5);  // xt[0, 0, 1] = x[0, 1, 0]
  EXPECT_THROW(data::mixup(x, 0.0, 1, 0, 0), Error);
  EXPECT_THROW(data::mixup_apply(x, data::MixupParams{{0, 1}, 0.5}), Error);
}

TEST(Mixup, LambdaFollowsBetaAlphaAlpha) {
  for (double alpha : {0.2, 1.0, 4.0}) {
    const int N = 20000;
    double sum = 0, sq = 0;
    int below = 0;
    for (int s = 0; s < N; ++s) {
      const double l = data::sample_mixup(2, alpha, 3, 0, s).lambda;
      ASSERT_TRUE(l >= 0.0 && l <= 1.0) << l;
      sum += l;
      sq += l * l;
      below += l < 0.5;
    }
    const double mean = sum / N, var = sq / N - mean * mean;
    const double var_true = 1.0 / (4.0 * (2.0 * alpha + 1.0));  // Beta(a, a): 1 / (4 (2a + 1))
    EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(var_true / N)) << alpha;
    EXPECT_NEAR(var, var_true, 0.05 * var_true) << alpha;
    EXPECT_NEAR(below, N / 2, 5 * std::sqrt(N / 4.0)) << alpha;  // symmetric
  }
  // Gamma(a) has mean a
  data::OpRng rng(1, 2, 3);
  double g = 0;
  for (int i = 0; i < 20000; ++i) g += data::sample_gamma(0.5, rng);
  EXPECT_NEAR(g / 20000, 0.5, 0.03);
}

TEST(Mixup, PermutationsAreUniformish) {
  // every one of the 6 permutations of 3 occurs with frequency near 1/6
  std::map<std::vector<int64_t>, int> seen;
  for (int s = 0; s < 6000; ++s) ++seen[data::sample_mixup(3, 1.0, 9, 1, s).perm];
  ASSERT_EQ(seen.size(), 6u);
  for (auto& [p, c] : seen) EXPECT_NEAR(c, 1000, 5 * std::sqrt(6000 * (1.0 / 6) * (5.0 / 6)));
}

}  // namespace
}  // namespace siam

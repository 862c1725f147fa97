// all_gather_rows and all_reduce_sum give every rank the gradient of the global loss: W ranks with batch B
// each against one process with the batch W B (parameter gradients compared after averaging over the ranks,
// as DDP does, to 1e-5 relative). Models: Linear -> (Sync)BatchNorm1d -> ReLU -> Linear.
#include <gtest/gtest.h>

#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/siamese.h"
#include "tests/dist/dist_util.h"

namespace siam::test {
namespace {

constexpr double kTol = 1e-5;

struct Views {
  Tensor x1, x2;  // (W B, 8) global
};
Views views(int64_t rows, uint64_t seed) { return {global_batch({rows, 8}, seed), global_batch({rows, 8}, seed + 1)}; }

// Runs `dist_loss` on this rank's rows with a SyncBN model and `ref_loss` on the whole batch with a BN model;
// checks the losses and the rank-averaged parameter gradients against the single-process ones.
template <class DistLoss, class RefLoss>
void check_against_single(const char* what, DistLoss dist_loss, RefLoss ref_loss, double loss_scale_on_rank) {
  auto& c = dist::world();
  const int64_t B = 6;
  Views v = views(B * c.world_size(), 77);
  auto ref = make_mlp(false, 5), mine = make_mlp(true, 5);

  Tensor l_ref = ref_loss(ref->forward(v.x1), ref->forward(v.x2));
  l_ref.backward();
  Tensor l = dist_loss(mine->forward(my_rows(v.x1, c)), mine->forward(my_rows(v.x2, c)));
  l.backward();

  // loss_scale_on_rank 1: every rank holds the global value; 0: a local mean, whose rank average is global.
  Tensor lv = loss_scale_on_rank == 1 ? l.detach() : rank_average(l, c);
  EXPECT_REL_NEAR(lv, l_ref.detach(), kTol, what << " loss");
  auto pr = ref->named_parameters(), pm = mine->named_parameters();
  ASSERT_EQ(pr.size(), pm.size());
  double scale = 0;  // gradients that vanish mathematically (biases right before a normalization) count as 0
  for (auto& [name, p] : pr) scale = std::max(scale, max_abs(p.grad()));
  for (size_t i = 0; i < pr.size(); ++i) {
    ASSERT_TRUE(pm[i].second.grad().defined()) << pm[i].first;
    EXPECT_REL_NEAR(rank_average(pm[i].second.grad(), c), pr[i].second.grad(), kTol, what << " grad of " << pm[i].first,
                    0.1 * scale);
  }
  // running statistics of the SyncBN equal those of BN on the whole batch
  EXPECT_REL_NEAR(mine->buffer("1.running_mean"), ref->buffer("1.running_mean"), kTol, what << " running_mean");
  EXPECT_REL_NEAR(mine->buffer("1.running_var"), ref->buffer("1.running_var"), kTol, what << " running_var");
}

TEST(DistGradients, NtXentOverGatheredRows) {
  check_against_single(
      "nt_xent",
      [](Tensor z1, Tensor z2) { return nt_xent(dist::all_gather_rows(z1), dist::all_gather_rows(z2), 0.5); },
      [](Tensor z1, Tensor z2) { return nt_xent(z1, z2, 0.5); }, 1);
}

TEST(DistGradients, BarlowTwinsOverGatheredRows) {
  check_against_single(
      "barlow (gathered)",
      [](Tensor z1, Tensor z2) {
        return barlow_twins_loss(dist::all_gather_rows(z1), dist::all_gather_rows(z2), 0.05);
      },
      [](Tensor z1, Tensor z2) { return barlow_twins_loss(z1, z2, 0.05); }, 1);
}

// nt_xent_gathered (engine/ops/siamese.h): each rank's rows against every rank's gathered columns, its loss the
// local mean of the global NT-Xent's rows; the rank average is nt_xent over the whole batch, and gradients
// flow to the local rows and, through all_gather_rows' backward, to every rank's columns.
TEST(DistGradients, NtXentGatheredLocalRowsAgainstGatheredColumns) {
  check_against_single(
      "nt_xent_gathered",
      [](Tensor z1, Tensor z2) {
        const int64_t offset = dist::world().rank() * z1.size(0);
        return nt_xent_gathered(z1, z2, dist::all_gather_rows(z1), dist::all_gather_rows(z2), offset, 0.5);
      },
      [](Tensor z1, Tensor z2) { return nt_xent(z1, z2, 0.5); }, 0);
}

// Local rows against gathered columns, loss = this rank's mean (the efficient SimCLR/MoCo form).
TEST(DistGradients, LocalRowsAgainstGatheredColumns) {
  auto loss = [](const Tensor& q, const Tensor& keys) {
    return mean(logsumexp(matmul(normalize(q), normalize(keys).t()) / 0.2, 1));
  };
  check_against_single(
      "local rows", [&](Tensor z1, Tensor z2) { return loss(z1, dist::all_gather_rows(z2)); },
      [&](Tensor z1, Tensor z2) { return loss(z1, z2); }, 0);
}

// Barlow Twins from all-reduced statistics: batch mean, variance and cross-correlation are sums over every
// rank's rows (the all_reduce_sum form), the loss the same global value on every rank.
Tensor barlow_from_sums(const Tensor& z1, const Tensor& z2, double lambda, double n, bool distributed) {
  auto total = [&](const Tensor& t) { return distributed ? dist::all_reduce_sum(t) : t; };
  auto standardize = [&](const Tensor& z) {
    Tensor m = total(sum(z, {0})) / n;
    Tensor d = z - m;
    Tensor var = total(sum(square(d), {0})) / n;
    return d / sqrt(var + 1e-5);
  };
  Tensor c = total(matmul(standardize(z1).t(), standardize(z2))) / n;
  const int64_t D = c.size(0);
  Tensor I = eye(D);
  Tensor on = sum(square((c - 1.0) * I));
  Tensor off = sum(square(c * (1.0 - I)));
  return on + lambda * off;
}

TEST(DistGradients, BarlowTwinsFromAllReducedStatistics) {
  const double n = 6.0 * dist::world().world_size();
  check_against_single(
      "barlow (all_reduce_sum)", [&](Tensor z1, Tensor z2) { return barlow_from_sums(z1, z2, 0.05, n, true); },
      [&](Tensor z1, Tensor z2) { return barlow_twins_loss(z1, z2, 0.05); }, 1);
}

// The ops' own distributed forms (engine/ops/batch_stat_hooks.h) with dist::all_reduce_sum as the hook.
BatchStatHooks world_sums() {
  BatchStatHooks h;
  h.all_reduce_sum = [](const Tensor& t) { return dist::all_reduce_sum(t); };
  h.global_batch = 6 * dist::world().world_size();
  return h;
}

TEST(DistGradients, BarlowTwinsWithBatchStatHooks) {
  check_against_single(
      "barlow (hooks)", [](Tensor z1, Tensor z2) { return barlow_twins_loss(z1, z2, 0.05, 1e-5, world_sums()); },
      [](Tensor z1, Tensor z2) { return barlow_twins_loss(z1, z2, 0.05); }, 1);
}

TEST(DistGradients, VicregWithBatchStatHooks) {
  auto weighted = [](const VicregTerms& t) {
    return add(add(mul(t.invariance, 25.0), mul(t.variance, 25.0)), t.covariance);
  };
  check_against_single(
      "vicreg (hooks)", [&](Tensor z1, Tensor z2) { return weighted(vicreg_terms(z1, z2, 1e-4, world_sums())); },
      [&](Tensor z1, Tensor z2) { return weighted(vicreg_terms(z1, z2, 1e-4)); }, 1);
}

// The backward rules in isolation: d/dx of sum(w * all_gather_rows(x)) summed over the ranks' losses.
TEST(DistGradients, GatherAndReduceBackwardSumOverRanks) {
  auto& c = dist::world();
  const int W = c.world_size(), me = c.rank();
  Tensor x = full({2, 3}, me + 1.0).set_requires_grad();
  Tensor w = arange(0.0, 6.0 * W, 1.0).view({2 * W, 3});             // the same on every rank
  Tensor loss = sum(mul(dist::all_gather_rows(x), w) * (me + 1.0));  // rank-dependent loss
  loss.backward();
  // dL_q/dx_me = (q + 1) w[block me]; summed over q: W (W + 1) / 2 w[block me]
  Tensor want = w.narrow(0, 2 * me, 2) * (W * (W + 1) / 2.0);
  EXPECT_EQ(x.grad().to_vector<double>(), want.to_vector<double>());

  Tensor y = full({3}, me + 1.0).set_requires_grad();
  Tensor s = dist::all_reduce_sum(y);
  EXPECT_EQ(s.to_vector<double>()[0], W * (W + 1) / 2.0);
  sum(s * (me + 1.0)).backward();
  EXPECT_EQ(y.grad().to_vector<double>()[1], W * (W + 1) / 2.0);
}

}  // namespace
}  // namespace siam::test

// SyncBatchNorm on the ranks equals BatchNorm on the concatenated batch: forward, backward, running stats.
#include <gtest/gtest.h>

#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/dist/dist_util.h"

namespace siam::test {
namespace {

constexpr double kTol = 1e-5;

// Equal batches, loss = this rank's mean of y * R: the rank average of the losses is the global mean.
TEST(DistSyncBatchNorm, Matches2dBatchNormOnConcatenatedBatch) {
  auto& c = dist::world();
  const int W = c.world_size();
  const int64_t B = 3, C = 4;
  Tensor x = global_batch({B * W, C, 3, 5}, 11) * 2.0 + 0.5;
  Tensor R = global_batch({B * W, C, 3, 5}, 12);
  manual_seed(1);
  nn::BatchNorm2d ref(C);
  nn::SyncBatchNorm mine(C);
  {  // non-trivial affine parameters, the same in both
    NoGradGuard ng;
    Tensor w = global_batch({C}, 13) * 0.3 + 1.0, b = global_batch({C}, 14);
    Tensor(ref.weight()).copy_(w), Tensor(mine.weight()).copy_(w);
    Tensor(ref.bias()).copy_(b), Tensor(mine.bias()).copy_(b);
  }
  for (int step = 0; step < 2; ++step) {  // two steps: the running statistics compound
    Tensor xg = x.detach().set_requires_grad(), xr = my_rows(x, c).set_requires_grad();
    Tensor y_ref = ref.forward(xg), y = mine.forward(xr);
    EXPECT_REL_NEAR(y, my_rows(y_ref.detach(), c), kTol, "forward, step " << step);
    mean(y_ref * R).backward();
    mean(y * my_rows(R, c)).backward();
    // this rank's input gradient is the gradient of sum_r L_r: W times that of the global mean
    EXPECT_REL_NEAR(xr.grad() / static_cast<double>(W), my_rows(xg.grad(), c), kTol, "input grad, step " << step);
    x = x + 0.25;  // a different batch for the second step
  }
  EXPECT_REL_NEAR(rank_average(mine.weight().grad(), c), ref.weight().grad(), kTol, "weight grad");
  EXPECT_REL_NEAR(rank_average(mine.bias().grad(), c), ref.bias().grad(), kTol, "bias grad");
  EXPECT_REL_NEAR(mine.running_mean(), ref.running_mean(), kTol, "running_mean");
  EXPECT_REL_NEAR(mine.running_var(), ref.running_var(), kTol, "running_var");
  EXPECT_EQ(mine.num_batches_tracked().item(), 2);
  // the same state_dict names as BatchNorm
  auto sr = ref.state_dict(), sm = mine.state_dict();
  ASSERT_EQ(sr.size(), sm.size());
  for (size_t i = 0; i < sr.size(); ++i) EXPECT_EQ(sr[i].first, sm[i].first);
  // eval: the running statistics, no communication
  mine.eval(), ref.eval();
  EXPECT_REL_NEAR(mine.forward(my_rows(x, c)), my_rows(ref.forward(x), c), kTol, "eval forward");
}

// Different batch sizes per rank (rank r has 2 + r rows), (N, C) input, loss = sum: the gradients sum.
TEST(DistSyncBatchNorm, UnequalBatchesAnd1d) {
  auto& c = dist::world();
  const int W = c.world_size(), me = c.rank();
  const int64_t C = 5;
  int64_t total = 0, start = 0;
  for (int r = 0; r < W; ++r) {
    if (r == me) start = total;
    total += 2 + r;
  }
  Tensor x = global_batch({total, C}, 21) + 3.0;  // a large mean: the merge must not lose precision
  Tensor R = global_batch({total, C}, 22);
  nn::BatchNorm1d ref(C, {.momentum = std::nullopt});  // cumulative average
  nn::SyncBatchNorm mine(C, {.momentum = std::nullopt});
  Tensor xg = x.detach().set_requires_grad();
  Tensor xr = x.narrow(0, start, 2 + me).contiguous().set_requires_grad();
  Tensor y_ref = ref.forward(xg), y = mine.forward(xr);
  EXPECT_REL_NEAR(y, y_ref.detach().narrow(0, start, 2 + me), kTol, "forward");
  sum(y_ref * R).backward();
  sum(y * R.narrow(0, start, 2 + me)).backward();
  EXPECT_REL_NEAR(xr.grad(), xg.grad().narrow(0, start, 2 + me), kTol, "input grad");
  Tensor gw = mine.weight().grad().clone();
  c.all_reduce(gw, dist::ReduceOp::sum);
  EXPECT_REL_NEAR(gw, ref.weight().grad(), kTol, "weight grad (summed)");
  EXPECT_REL_NEAR(mine.running_var(), ref.running_var(), kTol, "running_var");
}

}  // namespace
}  // namespace siam::test

// engine/dist with the single-process backend (world size 1, what runs without mpirun): every collective,
// the autograd collectives (and their gradient-check samples), DDP leaving gradients untouched, and
// SyncBatchNorm bitwise equal to BatchNorm. The cross-rank behaviour is tested in tests/dist (label dist).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/core/random.h"
#include "engine/dist/ddp.h"
#include "engine/dist/dist.h"
#include "engine/nn/batchnorm.h"
#include "engine/nn/sync_batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/norm.h"
#include "engine/ops/reduce.h"
#include "tests/unit/op_samples.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

using ::testing::HasSubstr;

SIAM_OP_SAMPLES("all_gather_rows") {
  OpSample s;
  s.label = "world size 1";
  s.inputs = {rnd({3, 4})};
  s.fn = [](const std::vector<Tensor>& in) { return mul(dist::all_gather_rows(in[0]), in[0]); };
  return {s};
}

SIAM_OP_SAMPLES("all_reduce_sum") {
  OpSample s;
  s.label = "world size 1";
  s.inputs = {rnd({2, 3})};
  s.fn = [](const std::vector<Tensor>& in) { return square(dist::all_reduce_sum(in[0])); };
  return {s};
}

// The collective path of sync batch norm (statistics merged from the gathered moments, gradient sums reduced),
// on one rank.
OpSample sbn(std::string label, Tensor x, bool affine) {
  const int64_t C = x.size(1);
  OpSample s;
  s.label = std::move(label);
  s.inputs = {x};
  if (affine) s.inputs = {x, rnd({C}, 0.5, 1.5), rnd({C})};
  s.fn = [C](const std::vector<Tensor>& in) {
    Tensor rm = zeros({C}, DType::f64), rv = ones({C}, DType::f64);
    return sync_batch_norm(in[0], rm, rv, in.size() > 1 ? in[1] : Tensor(), in.size() > 2 ? in[2] : Tensor(), 0.1, 1e-5,
                           dist::world());
  };
  s.atol = 1e-5, s.rtol = 1e-4;
  return s;
}

SIAM_OP_SAMPLES("sync_batch_norm") {
  return {sbn("2d affine", rnd({3, 2, 3, 3}), true), sbn("1d (N, C) no affine", rnd({6, 4}), false),
          sbn("1d (N, C, L) affine, non-contiguous", rnd_noncontig({3, 2, 4}), true)};
}

TEST(DistSingle, WorldWithoutInitIsSingle) {
  auto& c = dist::world();
  EXPECT_EQ(c.backend(), "single");
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.world_size(), 1);
  EXPECT_EQ(c.local_rank(), 0);
  EXPECT_TRUE(dist::is_main());
  EXPECT_GT(c.timeout_s(), 0);
}

TEST(DistSingle, CollectivesAreIdentities) {
  auto& c = dist::world();
  Tensor t = from_vector({1, -2, 3, 4}, {2, 2});
  for (auto op : {dist::ReduceOp::sum, dist::ReduceOp::avg, dist::ReduceOp::max}) {
    Tensor u = t.clone();
    c.all_reduce(u, op);
    EXPECT_EQ(u.to_vector<double>(), t.to_vector<double>()) << dist::reduce_op_name(op);
  }
  Tensor g = c.all_gather(t);
  EXPECT_FALSE(g.storage() == t.storage());  // a new tensor
  EXPECT_EQ(g.to_vector<double>(), t.to_vector<double>());
  EXPECT_EQ(c.reduce_scatter(t, dist::ReduceOp::sum).to_vector<double>(), t.to_vector<double>());
  Tensor b = t.clone();
  c.broadcast(b, 0);
  EXPECT_EQ(b.to_vector<double>(), t.to_vector<double>());
  c.barrier();
  auto d = c.duplicate("d");
  EXPECT_EQ(d->world_size(), 1);
  EXPECT_EQ(d->name(), "d");
}

TEST(DistSingle, CollectiveErrors) {
  auto& c = dist::world();
  Tensor i = zeros({2}, DType::i64);
  EXPECT_THAT(error_of([&] { c.all_reduce(i, dist::ReduceOp::avg); }), HasSubstr("avg needs a floating"));
  Tensor nc = zeros({2, 3}).t();
  EXPECT_THAT(error_of([&] { c.all_reduce(nc, dist::ReduceOp::sum); }), HasSubstr("contiguous"));
  Tensor t = zeros({2});
  EXPECT_THAT(error_of([&] { c.broadcast(t, 1); }), HasSubstr("root 1 outside world of size 1"));
  EXPECT_THAT(error_of([&] { c.all_gather(scalar_tensor(1.0)); }), HasSubstr("scalar"));
  EXPECT_THAT(error_of([&] { c.set_timeout_s(0); }), HasSubstr("timeout must be positive"));
}

TEST(DistSingle, TimeoutFromEnvironment) {
  const char* old = std::getenv("SIAM_DIST_TIMEOUT_S");
  std::string saved = old ? old : "";
  ::setenv("SIAM_DIST_TIMEOUT_S", "2.5", 1);
  EXPECT_EQ(dist::default_timeout_s(), 2.5);
  ::setenv("SIAM_DIST_TIMEOUT_S", "soon", 1);
  EXPECT_THAT(error_of([] { dist::default_timeout_s(); }), HasSubstr("SIAM_DIST_TIMEOUT_S"));
  ::unsetenv("SIAM_DIST_TIMEOUT_S");
  EXPECT_EQ(dist::default_timeout_s(), 300.0);
  if (old) ::setenv("SIAM_DIST_TIMEOUT_S", saved.c_str(), 1);
}

TEST(DistSingle, AutogradCollectivesPassGradientsThrough) {
  Tensor x = from_vector({1, 2, 3, 4}, {2, 2}).set_requires_grad();
  Tensor y = dist::all_gather_rows(x);
  EXPECT_EQ(y.shape(), x.shape());
  sum(y * 3.0).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>(4, 3.0));
  Tensor z = from_vector({1, 2}, {2}).set_requires_grad();
  sum(dist::all_reduce_sum(z) * 2.0).backward();
  EXPECT_EQ(z.grad().to_vector<double>(), std::vector<double>(2, 2.0));
}

TEST(DistSingle, DdpLeavesGradientsUntouched) {
  manual_seed(3);
  Tensor p = randn({3, 4}).set_requires_grad(), q = randn({4}).set_requires_grad();
  Tensor buf = ones({2});
  dist::DistributedDataParallel ddp({{"p", p}, {"q", q}}, {{"buf", buf}}, {.bucket_mb = 1e-5});
  EXPECT_FALSE(ddp.overlapping());
  EXPECT_EQ(ddp.num_buckets(), 2);
  EXPECT_EQ(ddp.bucket_names()[0], std::vector<std::string>{"q"});  // reverse order
  {
    auto ns = ddp.no_sync();
    EXPECT_FALSE(ddp.sync());
    sum(p * 2.0).backward();
  }
  EXPECT_TRUE(ddp.sync());
  sum(p * 2.0 + sum(q)).backward();
  ddp.finish();
  EXPECT_EQ(p.grad().to_vector<double>(), std::vector<double>(12, 4.0));
  EXPECT_EQ(q.grad().to_vector<double>(), std::vector<double>(4, 12.0));
  ddp.all_reduce_grads();
  EXPECT_EQ(q.grad().to_vector<double>(), std::vector<double>(4, 12.0));
}

// Single process: SyncBatchNorm is BatchNorm, bit for bit (forward, backward, running statistics).
TEST(DistSingle, SyncBatchNormIsBatchNormBitwise) {
  manual_seed(8);
  Tensor x0 = randn({4, 3, 5, 5}) * 1.5 + 0.3;
  nn::BatchNorm2d bn(3);
  nn::SyncBatchNorm sbn(3);
  for (int step = 0; step < 2; ++step) {
    Tensor xa = x0.detach().clone().set_requires_grad(), xb = x0.detach().clone().set_requires_grad();
    Tensor ya = bn.forward(xa), yb = sbn.forward(xb);
    EXPECT_EQ(ya.to_vector<float>(), yb.to_vector<float>());
    sum(ya * ya).backward();
    sum(yb * yb).backward();
    EXPECT_EQ(xa.grad().to_vector<float>(), xb.grad().to_vector<float>());
    x0 = x0 * 0.5 - 1.0;
  }
  EXPECT_EQ(bn.weight().grad().to_vector<float>(), sbn.weight().grad().to_vector<float>());
  EXPECT_EQ(bn.bias().grad().to_vector<float>(), sbn.bias().grad().to_vector<float>());
  auto sa = bn.state_dict(), sb = sbn.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_EQ(sa[i].second.to_vector<double>(), sb[i].second.to_vector<double>()) << sa[i].first;
  }
  bn.eval(), sbn.eval();
  EXPECT_EQ(bn.forward(x0).to_vector<float>(), sbn.forward(x0).to_vector<float>());
  EXPECT_THAT(error_of([&] { sbn.forward(zeros({2})); }), HasSubstr("SyncBatchNorm(3)"));
}

// The collective path (gathered moments merged, reduced gradient sums) against batch_norm on one rank.
TEST(DistSingle, SyncBatchNormPathMatchesBatchNorm) {
  manual_seed(9);
  Tensor x = randn({6, 4, 3}) + 2.0;
  Tensor w = rand({4}) + 0.5, b = randn({4});
  Tensor rm1 = zeros({4}), rv1 = ones({4}), rm2 = zeros({4}), rv2 = ones({4});
  Tensor xa = x.detach().set_requires_grad(), xb = x.detach().clone().set_requires_grad();
  Tensor ya = batch_norm(xa, rm1, rv1, w, b, true, 0.2);
  Tensor yb = sync_batch_norm(xb, rm2, rv2, w, b, 0.2, 1e-5, dist::world());
  auto close = [](const Tensor& p, const Tensor& q) {
    auto vp = p.to_vector<double>(), vq = q.to_vector<double>();
    double m = 0;
    for (size_t i = 0; i < vp.size(); ++i) m = std::max(m, std::fabs(vp[i] - vq[i]));
    return m;
  };
  EXPECT_LT(close(ya, yb), 1e-5);
  EXPECT_LT(close(rm1, rm2), 1e-6);
  EXPECT_LT(close(rv1, rv2), 1e-6);
  Tensor r = randn({6, 4, 3});
  sum(ya * r).backward();
  sum(yb * r).backward();
  EXPECT_LT(close(xa.grad(), xb.grad()), 1e-5);
}

}  // namespace
}  // namespace siam::test

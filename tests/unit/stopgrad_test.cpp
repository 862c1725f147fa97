// Stopgrad (issue 4, item 5): detach() is a zero-copy view (same storage and data pointer, no bytes allocated,
// by the caching host allocator's statistics) cut from the graph, and no gradient crosses it, in SimSiam's
// setting (predictor on one branch, the other branch's z.detach() as target) and BYOL's (a target network
// whose output is detached): the online gradients equal those computed with the targets as constant leaves,
// and the target network's parameters receive nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/core/storage.h"
#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

void expect_same_values(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.defined()) << what;
  ASSERT_TRUE(b.defined()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) ASSERT_NEAR(va[i], vb[i], 1e-6 * (std::abs(vb[i]) + 1e-3)) << what << " " << i;
}

Tensor param(const Shape& s) { return mul(randn(s), 0.3).set_requires_grad(true); }
Tensor copy_of(const Tensor& p) { return p.detach().clone().set_requires_grad(true); }

TEST(Stopgrad, DetachIsAZeroCopyView) {
  Tensor x = randn({256, 128}).set_requires_grad(true);  // 128 KiB: a cached size class
  Tensor y = mul(x, 2.0);                                // a non-leaf with history
  for (const Tensor& t : {x, y, y.t()}) {
    const CpuAllocStats before = cpu_alloc_stats();
    Tensor d = t.detach();
    const CpuAllocStats after = cpu_alloc_stats();
    EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
    EXPECT_EQ(after.system_allocs, before.system_allocs);
    EXPECT_EQ(after.cache_hits, before.cache_hits);
    EXPECT_EQ(d.raw_data(), t.raw_data());
    EXPECT_EQ(d.storage().get(), t.storage().get());
    EXPECT_EQ(d.shape(), t.shape());
    EXPECT_EQ(d.strides(), t.strides());
    EXPECT_EQ(d.offset(), t.offset());
    EXPECT_FALSE(d.requires_grad());
    EXPECT_EQ(d.grad_fn(), nullptr);
    EXPECT_TRUE(d.is_leaf());
  }
  // the same memory: a write through the detached view is seen by the original
  Tensor d = x.detach();
  d.select(0, 3).fill_(7.0);
  EXPECT_EQ(x.select(0, 3).to_vector<float>(), std::vector<float>(128, 7.0f));
}

TEST(Stopgrad, NoGradientCrossesDetach) {
  Tensor x = randn({5, 4}).set_requires_grad(true);
  Tensor y = mul(x, 3.0);
  // d/dx sum(stop(y) * y) = 3 stop(y): only the undetached factor carries a gradient
  sum(mul(y.detach(), y)).backward();
  expect_same_values(x.grad(), mul(y.detach(), 3.0), "dx");
  // a loss built only from detached values has no graph at all
  Tensor only = sum(mul(x, 2.0).detach());
  EXPECT_FALSE(only.requires_grad());
  EXPECT_NE(error_of([&] { only.backward(); }).find("does not require a gradient"), std::string::npos);
}

// SimSiam: z = f(x), p = h(z); L = D(p1, stop(z2)) / 2 + D(p2, stop(z1)) / 2.
TEST(Stopgrad, SimSiamGradientsEqualConstantTargets) {
  manual_seed(51);
  const int64_t n = 16, din = 12, d = 8;
  Tensor x1 = randn({n, din}), x2 = randn({n, din});
  Tensor wf = param({d, din}), wh = param({d, d});
  auto f = [](const Tensor& x, const Tensor& w) { return tanh(linear(x, w)); };
  Tensor z1 = f(x1, wf), z2 = f(x2, wf);
  Tensor p1 = linear(z1, wh), p2 = linear(z2, wh);
  const size_t allocated = cpu_alloc_stats().allocated_bytes;
  Tensor t1 = z1.detach(), t2 = z2.detach();
  EXPECT_EQ(cpu_alloc_stats().allocated_bytes, allocated) << "detach allocated memory";
  EXPECT_EQ(t1.raw_data(), z1.raw_data());
  Tensor loss = add(mul(normalized_mse(p1, t2), 0.5), mul(normalized_mse(p2, t1), 0.5));
  loss.backward();

  // the same step with the targets as constant leaves (fresh copies, no history)
  Tensor wf2 = copy_of(wf), wh2 = copy_of(wh);
  Tensor c1 = z1.detach().clone(), c2 = z2.detach().clone();
  Tensor q1 = linear(f(x1, wf2), wh2), q2 = linear(f(x2, wf2), wh2);
  Tensor loss2 = add(mul(normalized_mse(q1, c2), 0.5), mul(normalized_mse(q2, c1), 0.5));
  loss2.backward();
  EXPECT_DOUBLE_EQ(loss.item(), loss2.item());
  expect_same_values(wf.grad(), wf2.grad(), "encoder gradient");
  expect_same_values(wh.grad(), wh2.grad(), "predictor gradient");

  // without the stop-gradient the encoder gradient differs (the test can tell)
  Tensor wf3 = copy_of(wf), wh3 = copy_of(wh);
  Tensor y1 = f(x1, wf3), y2 = f(x2, wf3);
  add(mul(normalized_mse(linear(y1, wh3), y2), 0.5), mul(normalized_mse(linear(y2, wh3), y1), 0.5)).backward();
  auto g = wf.grad().to_vector<double>(), g3 = wf3.grad().to_vector<double>();
  double diff = 0;
  for (size_t i = 0; i < g.size(); ++i) diff = std::max(diff, std::abs(g[i] - g3[i]));
  EXPECT_GT(diff, 1e-4);
}

// BYOL: online encoder + predictor q, target encoder (its own parameters, here even marked as requiring a
// gradient); L = D(q(o1), stop(t2)) + D(q(o2), stop(t1)).
TEST(Stopgrad, ByolTargetNetworkGetsNoGradient) {
  manual_seed(52);
  const int64_t n = 10, din = 9, d = 6;
  Tensor x1 = randn({n, din}), x2 = randn({n, din});
  Tensor wo = param({d, din}), wq = param({d, d}), wt = param({d, din});
  auto enc = [](const Tensor& x, const Tensor& w) { return relu(linear(x, w)); };
  Tensor t1 = enc(x1, wt).detach(), t2 = enc(x2, wt).detach();
  Tensor loss = add(normalized_mse(linear(enc(x1, wo), wq), t2), normalized_mse(linear(enc(x2, wo), wq), t1));
  loss.backward();
  EXPECT_FALSE(wt.grad().defined()) << "a gradient crossed detach() into the target network";

  Tensor wo2 = copy_of(wo), wq2 = copy_of(wq);
  Tensor c1, c2;
  {
    NoGradGuard ng;
    c1 = enc(x1, wt);
    c2 = enc(x2, wt);
  }
  ASSERT_FALSE(c1.requires_grad());
  Tensor loss2 = add(normalized_mse(linear(enc(x1, wo2), wq2), c2), normalized_mse(linear(enc(x2, wo2), wq2), c1));
  loss2.backward();
  EXPECT_DOUBLE_EQ(loss.item(), loss2.item());
  expect_same_values(wo.grad(), wo2.grad(), "online encoder gradient");
  expect_same_values(wq.grad(), wq2.grad(), "predictor gradient");
}

}  // namespace
}  // namespace siam::test

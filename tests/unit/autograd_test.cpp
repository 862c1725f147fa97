// Autograd semantics: accumulation into leaves, detach as zero-copy stopgrad, no-grad mode, hooks, the
// freed-graph error, retain_graph, shared subexpressions and in-place guards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/test_util.h"
#include "engine/autograd/node.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/tensor.h"

namespace siam {
namespace {

using test::error_of;

using ::testing::HasSubstr;

Tensor leaf(std::vector<double> v, Shape s) { return from_vector(v, s, TensorOptions(DType::f64).with_requires_grad(true)); }


TEST(Autograd, AccumulatesAcrossBackwardCalls) {
  Tensor x = leaf({1, 2}, {2});
  sum(mul(x, x)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 4}));
  sum(mul(x, 3.0)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{5, 7}));
}

TEST(Autograd, SharedSubexpressionSumsGradients) {
  Tensor x = leaf({3}, {1});
  Tensor y = mul(x, x);          // 9
  Tensor z = add(mul(y, x), y);  // x^3 + x^2 -> dz/dx = 3x^2 + 2x = 33
  z.backward(ones({1}, DType::f64));
  EXPECT_DOUBLE_EQ(x.grad().item(), 33.0);
}

TEST(Autograd, DetachIsZeroCopyStopgrad) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor y = mul(x, 2.0);
  Tensor d = y.detach();
  EXPECT_EQ(d.storage().get(), y.storage().get());  // no bytes copied
  EXPECT_EQ(d.raw_data(), y.raw_data());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  // SimSiam-style: loss = -cos(p, stopgrad(z)); gradient reaches p's branch only
  Tensor p = leaf({0.5, -1, 2}, {3});
  Tensor loss = neg(sum(mul(p, d)));
  loss.backward();
  EXPECT_EQ(p.grad().to_vector<double>(), (std::vector<double>{-2, -4, -6}));
  EXPECT_FALSE(x.grad().defined());  // nothing crossed the detach
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y;
  {
    NoGradGuard ng;
    EXPECT_FALSE(grad_mode_enabled());
    y = mul(x, x);
  }
  EXPECT_TRUE(grad_mode_enabled());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  EXPECT_THAT(error_of([&] { sum(y).backward(); }), HasSubstr("does not require a gradient"));
}

TEST(Autograd, FreedGraphWalkedTwiceIsAClearError) {
  Tensor x = leaf({1, 2}, {2});
  Tensor l = sum(exp(x));
  l.backward();
  EXPECT_THAT(error_of([&] { l.backward(); }), HasSubstr("a second time"));
  Tensor l2 = sum(exp(x));
  x.set_grad(Tensor());
  l2.backward(Tensor(), /*retain_graph=*/true);
  l2.backward();
  auto g = x.grad().to_vector<double>();
  EXPECT_NEAR(g[0], 2 * std::exp(1.0), 1e-12);
}

TEST(Autograd, HooksSeeAndReplaceGradients) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y = mul(x, 3.0);
  std::vector<double> seen;
  y.register_hook([&](const Tensor& g) -> std::optional<Tensor> {
    seen = g.to_vector<double>();
    return mul(g, 10.0);
  });
  int post = 0;
  x.register_post_accumulate_hook([&](const Tensor& t) {
    ++post;
    EXPECT_TRUE(t.grad().defined());
  });
  sum(y).backward();
  EXPECT_EQ(seen, (std::vector<double>{1, 1}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{30, 30}));
  EXPECT_EQ(post, 1);
  Tensor z = leaf({1}, {1});
  z.register_hook([](const Tensor& g) -> std::optional<Tensor> { return mul(g, 0.5); });
  sum(mul(z, 4.0)).backward();
  EXPECT_DOUBLE_EQ(z.grad().item(), 2.0);
}

TEST(Autograd, GradientBuffersDoNotAlias) {
  // add's backward hands the same gradient to both inputs; accumulating into one must not change the other
  Tensor a = leaf({1, 1}, {2}), b = leaf({1, 1}, {2});
  sum(add(a, b)).backward();
  sum(mul(a, 5.0)).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{6, 6}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{1, 1}));
}

TEST(Autograd, InPlaceOnLeafNeedsNoGrad) {
  Tensor x = leaf({1, 2}, {2});
  EXPECT_THAT(error_of([&] { x.add_(ones({2}, DType::f64)); }), HasSubstr("in-place update of a tensor that requires"));
  {
    NoGradGuard ng;
    x.add_(ones({2}, DType::f64), -0.5);
  }
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{0.5, 1.5}));
}

TEST(Autograd, BackwardNeedsScalarOrGradient) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y = mul(x, 2.0);
  EXPECT_THAT(error_of([&] { y.backward(); }), HasSubstr("a gradient is needed"));
  y.backward(from_vector({1, 3}, {2}, DType::f64));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 6}));
  EXPECT_THAT(error_of([&] { mul(x, 2.0).backward(ones({3}, DType::f64)); }), HasSubstr("gradient of shape [3]"));
}

TEST(Autograd, NonLeafCannotToggleRequiresGrad) {
  Tensor x = leaf({1}, {1});
  Tensor y = mul(x, 2.0);
  EXPECT_THAT(error_of([&] { y.set_requires_grad(false); }), HasSubstr("only leaf tensors"));
  EXPECT_THAT(error_of([&] { zeros({2}, DType::i64).set_requires_grad(true); }), HasSubstr("only floating"));
}

TEST(Autograd, ByolStyleTargetGetsNoGradient) {
  // online -> predictor; target branch computed from a detached copy of the weights: only online learns
  Tensor w_online = leaf({0.5, -0.2, 0.1, 0.3}, {2, 2});
  Tensor w_target = w_online.detach().clone();
  Tensor x = from_vector({1, 2, 3, 4}, {2, 2}, DType::f64);
  Tensor p = normalize(linear(x, w_online), 1);
  Tensor z = normalize(linear(x, w_target), 1).detach();
  Tensor loss = mean(sum(mul(sub(p, z), sub(p, z)), {1}));
  loss.backward();
  EXPECT_TRUE(w_online.grad().defined());
  EXPECT_FALSE(w_target.requires_grad());
  EXPECT_FALSE(w_target.grad().defined());
}

}  // namespace
}  // namespace siam

// Optimizers and schedules against values worked out by hand (the arithmetic is in the comments).
// Gradients are set directly with set_grad so each step's input is explicit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "engine/nn/batchnorm.h"
#include "engine/nn/linear.h"
#include "engine/nn/sequential.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/adamw.h"
#include "engine/optim/lars.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"

namespace siam::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Tensor param(std::vector<double> v) {
  Shape s{static_cast<int64_t>(v.size())};
  return from_vector(v, s, TensorOptions().with_requires_grad(true));
}

void set_grad(Tensor& p, std::vector<double> g) { p.set_grad(from_vector(g, p.shape())); }

void expect_values(const Tensor& t, std::vector<double> expected, double tol = 1e-6) {
  auto v = t.to_vector<double>();
  ASSERT_EQ(v.size(), expected.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], expected[i], tol) << "element " << i;
}

template <class Fn>
void expect_error(Fn fn, const std::string& text) {
  try {
    fn();
    FAIL() << "expected siam::Error containing: " << text;
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(text));
  }
}

// Every SGD case starts from p = [1, 2, -1] with g1 = [0.5, -1, 2], g2 = [1, 1, -1] and lr = 0.1.
struct SgdCase {
  Tensor p = param({1, 2, -1});
  template <class Opt>
  void step(Opt& opt, std::vector<double> g) {
    set_grad(p, g);
    opt.step();
  }
};

TEST(OptimSGD, Plain) {
  SgdCase c;
  optim::SGD opt({c.p}, {.lr = 0.1});
  // p = [1, 2, -1] - 0.1 * [0.5, -1, 2] = [0.95, 2.1, -1.2]
  c.step(opt, {0.5, -1, 2});
  expect_values(c.p, {0.95, 2.1, -1.2});
  // p = [0.95, 2.1, -1.2] - 0.1 * [1, 1, -1] = [0.85, 2.0, -1.1]
  c.step(opt, {1, 1, -1});
  expect_values(c.p, {0.85, 2.0, -1.1});
  EXPECT_TRUE(opt.state(0).empty());  // no momentum, no state
  EXPECT_TRUE(c.p.is_leaf());
  EXPECT_TRUE(c.p.requires_grad());
}

TEST(OptimSGD, Momentum) {
  SgdCase c;
  optim::SGD opt({c.p}, {.lr = 0.1, .momentum = 0.9});
  // step 1: buf = g1 = [0.5, -1, 2]; p = [1, 2, -1] - 0.1 * buf = [0.95, 2.1, -1.2]
  c.step(opt, {0.5, -1, 2});
  expect_values(c.p, {0.95, 2.1, -1.2});
  expect_values(opt.state(0).at("momentum_buffer"), {0.5, -1, 2});
  // step 2: buf = 0.9 * [0.5, -1, 2] + [1, 1, -1] = [1.45, 0.1, 0.8]
  //         p = [0.95, 2.1, -1.2] - 0.1 * [1.45, 0.1, 0.8] = [0.805, 2.09, -1.28]
  c.step(opt, {1, 1, -1});
  expect_values(opt.state(0).at("momentum_buffer"), {1.45, 0.1, 0.8});
  expect_values(c.p, {0.805, 2.09, -1.28});
}

TEST(OptimSGD, Nesterov) {
  SgdCase c;
  optim::SGD opt({c.p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  // step 1: buf = g1; d = g1 + 0.9 * buf = 1.9 * [0.5, -1, 2] = [0.95, -1.9, 3.8]
  //         p = [1, 2, -1] - 0.1 * d = [0.905, 2.19, -1.38]
  c.step(opt, {0.5, -1, 2});
  expect_values(c.p, {0.905, 2.19, -1.38});
  // step 2: buf = 0.9 * [0.5, -1, 2] + [1, 1, -1] = [1.45, 0.1, 0.8]
  //         d = [1, 1, -1] + 0.9 * buf = [2.305, 1.09, -0.28]
  //         p = [0.905, 2.19, -1.38] - 0.1 * d = [0.6745, 2.081, -1.352]
  c.step(opt, {1, 1, -1});
  expect_values(c.p, {0.6745, 2.081, -1.352});
}

TEST(OptimSGD, WeightDecay) {
  SgdCase c;
  optim::SGD opt({c.p}, {.lr = 0.1, .weight_decay = 0.1});
  // step 1: d = [0.5, -1, 2] + 0.1 * [1, 2, -1] = [0.6, -0.8, 1.9]; p = [1, 2, -1] - 0.1 * d = [0.94, 2.08, -1.19]
  c.step(opt, {0.5, -1, 2});
  expect_values(c.p, {0.94, 2.08, -1.19});
  // step 2: d = [1, 1, -1] + 0.1 * [0.94, 2.08, -1.19] = [1.094, 1.208, -1.119]
  //         p = [0.94, 2.08, -1.19] - 0.1 * d = [0.8306, 1.9592, -1.0781]
  c.step(opt, {1, 1, -1});
  expect_values(c.p, {0.8306, 1.9592, -1.0781});
}

TEST(OptimSGD, WeightDecayWithMomentum) {
  SgdCase c;
  optim::SGD opt({c.p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
  // step 1: d1 = [0.6, -0.8, 1.9] (as above); buf = d1; p = [0.94, 2.08, -1.19]
  c.step(opt, {0.5, -1, 2});
  expect_values(c.p, {0.94, 2.08, -1.19});
  // step 2: d2 = [1.094, 1.208, -1.119]; buf = 0.9 * d1 + d2 = [1.634, 0.488, 0.591]
  //         p = [0.94, 2.08, -1.19] - 0.1 * buf = [0.7766, 2.0312, -1.2491]
  c.step(opt, {1, 1, -1});
  expect_values(c.p, {0.7766, 2.0312, -1.2491});
}

TEST(OptimSGD, SkipsParametersWithoutGradient) {
  Tensor a = param({1, 2}), b = param({3, 4});
  optim::SGD opt({a, b}, {.lr = 0.5, .momentum = 0.9});
  set_grad(a, {1, 1});
  opt.step();
  expect_values(a, {0.5, 1.5});
  expect_values(b, {3, 4});
  EXPECT_TRUE(opt.state(1).empty());
  EXPECT_EQ(opt.steps_taken(), 1);
}

TEST(OptimSGD, StateRoundTripContinuesTheSameTrajectory) {
  SgdCase c1, c2;
  optim::SGD a({c1.p}, {.lr = 0.1, .momentum = 0.9});
  c1.step(a, {0.5, -1, 2});
  auto named = a.named_state();
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].first, "0.momentum_buffer");
  // A fresh optimizer on a parameter with the same values, given the saved state, continues identically.
  {
    NoGradGuard ng;
    c2.p.copy_(c1.p);
  }
  optim::SGD b({c2.p}, {.lr = 0.1, .momentum = 0.9});
  b.load_named_state(named);
  c1.step(a, {1, 1, -1});
  c2.step(b, {1, 1, -1});
  expect_values(c2.p, c1.p.to_vector<double>(), 0);
  expect_error([&] { b.load_named_state({{"7.momentum_buffer", zeros({3})}}); }, "names parameter 7 but there are 1");
  expect_error([&] { b.load_named_state({{"momentum_buffer", zeros({3})}}); }, "is not '<param index>.<key>'");
  expect_error([&] { b.load_named_state({{"0.momentum_buffer", zeros({4})}}); }, "has shape [4] but parameter 0");
}

// ---- LARS ----
// w = [6, 8] (||w|| = 10) in the adapted group, lr = 1.4, momentum 0.9, weight decay 0.1, eta = 0.25.
// b = [1, -2] in the excluded group (bias-like).

TEST(OptimLARS, AdaptedAndExcludedGroups) {
  Tensor w = param({6, 8});
  Tensor b = param({1, -2});
  // Both are 1-D (split_decay_exclude would exclude both), so the groups are built by hand.
  optim::ParamGroupSpec adapt{.name = "decay", .params = {w}};
  optim::ParamGroupSpec excl{.name = "exclude", .params = {b}, .weight_decay = 0.0, .lars_exclude = true};
  optim::LARS opt({adapt, excl}, {.lr = 1.4, .momentum = 0.9, .weight_decay = 0.1, .eta = 0.25});

  // step 1, w: d = g + 0.1 * w = [-0.6, 4.2] + [0.6, 0.8] = [0, 5] (||d|| = 5)
  //            trust = 0.25 * 10 / 5 = 0.5; scaled_lr = 1.4 * 0.5 = 0.7
  //            v = 0.7 * [0, 5] = [0, 3.5]; w = [6, 8] - v = [6, 4.5] (||w|| = 7.5)
  //         b: no decay, no trust ratio: v = 1.4 * [0.5, 0.5] = [0.7, 0.7]; b = [0.3, -2.7]
  set_grad(w, {-0.6, 4.2});
  set_grad(b, {0.5, 0.5});
  opt.step();
  expect_values(w, {6, 4.5});
  expect_values(b, {0.3, -2.7});
  expect_values(opt.state(0).at("momentum_buffer"), {0, 3.5});

  // step 2, w: d = [0.9, 1.55] + 0.1 * [6, 4.5] = [1.5, 2] (||d|| = 2.5)
  //            trust = 0.25 * 7.5 / 2.5 = 0.75; scaled_lr = 1.4 * 0.75 = 1.05
  //            v = 0.9 * [0, 3.5] + 1.05 * [1.5, 2] = [1.575, 5.25]; w = [6 - 1.575, 4.5 - 5.25] = [4.425, -0.75]
  //         b: v = 0.9 * [0.7, 0.7] + 1.4 * [-1, 0] = [-0.77, 0.63]; b = [0.3 + 0.77, -2.7 - 0.63] = [1.07, -3.33]
  set_grad(w, {0.9, 1.55});
  set_grad(b, {-1, 0});
  opt.step();
  expect_values(w, {4.425, -0.75}, 2e-6);
  expect_values(b, {1.07, -3.33}, 2e-6);
}

TEST(OptimLARS, WithoutExclusionTheBiasIsAdaptedAndDecayed) {
  Tensor b = param({1, -2});
  optim::LARS opt({b}, {.lr = 1.4, .momentum = 0.9, .weight_decay = 0.1, .eta = 0.25});
  // step 1: d = [0.5, 0.5] + 0.1 * [1, -2] = [0.6, 0.3]; ||b|| = sqrt(5), ||d|| = sqrt(0.45)
  //         trust = 0.25 * sqrt(5 / 0.45) = 0.25 * 10 / 3 = 5 / 6; scaled_lr = 1.4 * 5 / 6 = 7 / 6
  //         v = 7 / 6 * [0.6, 0.3] = [0.7, 0.35]; b = [0.3, -2.35]
  set_grad(b, {0.5, 0.5});
  opt.step();
  expect_values(b, {0.3, -2.35});
  // step 2: d = [-1, 0] + 0.1 * [0.3, -2.35] = [-0.97, -0.235]
  //         trust = 0.25 * ||[0.3, -2.35]|| / ||[-0.97, -0.235]||; scaled_lr = 1.4 * trust
  //         v = 0.9 * [0.7, 0.35] + scaled_lr * d; b = [0.3, -2.35] - v
  set_grad(b, {-1, 0});
  opt.step();
  double trust = 0.25 * std::hypot(0.3, -2.35) / std::hypot(-0.97, -0.235);
  double v0 = 0.9 * 0.7 + 1.4 * trust * -0.97, v1 = 0.9 * 0.35 + 1.4 * trust * -0.235;
  expect_values(b, {0.3 - v0, -2.35 - v1}, 2e-6);
}

TEST(OptimLARS, ZeroNormNesterovAndClip) {
  // ||p|| = 0: trust ratio 1, so scaled_lr = lr = 0.5, no momentum: p = [0, 0] - 0.5 * [1, 2]
  Tensor z = param({0, 0});
  optim::LARS zero({z}, {.lr = 0.5, .momentum = 0.0, .eta = 0.25});
  set_grad(z, {1, 2});
  zero.step();
  expect_values(z, {-0.5, -1});

  // nesterov, step 1 of the AdaptedAndExcludedGroups case for w: v = [0, 3.5], d = [0, 5], scaled_lr = 0.7
  //   update = 0.9 * v + 0.7 * d = [0, 3.15 + 3.5] = [0, 6.65]; w = [6, 8 - 6.65] = [6, 1.35]
  Tensor w = param({6, 8});
  optim::LARS nest({w}, {.lr = 1.4, .momentum = 0.9, .weight_decay = 0.1, .eta = 0.25, .nesterov = true});
  set_grad(w, {-0.6, 4.2});
  nest.step();
  expect_values(w, {6, 1.35});

  // clip_lr: scaled_lr = min(trust, lr) = min(0.5, 1.4) = 0.5; v = 0.5 * [0, 5] = [0, 2.5]; w = [6, 5.5]
  Tensor c = param({6, 8});
  optim::LARS clip({c}, {.lr = 1.4, .momentum = 0.9, .weight_decay = 0.1, .eta = 0.25, .clip_lr = true});
  set_grad(c, {-0.6, 4.2});
  clip.step();
  expect_values(c, {6, 5.5});
}

TEST(OptimLARS, SplitDecayExcludeOnAModule) {
  nn::Sequential net(
      {std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::BatchNorm1d>(8), std::make_shared<nn::Linear>(8, 2)});
  auto groups = optim::split_decay_exclude(net.named_parameters());
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "decay");
  EXPECT_THAT(groups[0].param_names, ElementsAre("0.weight", "2.weight"));
  EXPECT_FALSE(groups[0].lars_exclude);
  EXPECT_FALSE(groups[0].weight_decay.has_value());
  EXPECT_EQ(groups[1].name, "exclude");
  EXPECT_THAT(groups[1].param_names, ElementsAre("0.bias", "1.weight", "1.bias", "2.bias"));
  EXPECT_TRUE(groups[1].lars_exclude);
  EXPECT_EQ(groups[1].weight_decay.value(), 0.0);
  // By name as well: everything under "2." goes to exclude.
  auto by_name = optim::split_decay_exclude(net.named_parameters(), {"2."});
  EXPECT_THAT(by_name[0].param_names, ElementsAre("0.weight"));

  optim::LARS opt(groups, {.lr = 0.3, .weight_decay = 1e-6});
  EXPECT_EQ(opt.param_groups()[0].weight_decay, 1e-6);
  EXPECT_EQ(opt.param_groups()[1].weight_decay, 0.0);
  EXPECT_EQ(opt.num_params(), 6u);
}

// ---- AdamW ----

TEST(OptimAdamW, TwoSteps) {
  Tensor p = param({1, -2});
  optim::AdamW opt({p}, {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1});
  // step 1 (t = 1), g = [0.5, -1]:
  //   p *= 1 - 0.1 * 0.1 = 0.99 -> [0.99, -1.98]
  //   m = 0.1 * g = [0.05, -0.1];  v = 0.001 * g^2 = [0.00025, 0.001]
  //   m_hat = m / (1 - 0.9) = [0.5, -1];  sqrt(v_hat) = sqrt(v / (1 - 0.999)) = [0.5, 1]
  //   p -= 0.1 * m_hat / (sqrt(v_hat) + 1e-8) = 0.1 * [1, -1] -> [0.89, -1.88]
  set_grad(p, {0.5, -1});
  opt.step();
  expect_values(p, {0.89, -1.88});
  expect_values(opt.state(0).at("exp_avg"), {0.05, -0.1});
  expect_values(opt.state(0).at("exp_avg_sq"), {0.00025, 0.001}, 1e-9);
  EXPECT_EQ(opt.state(0).at("step").item(), 1.0);
  // step 2 (t = 2), g = [-0.5, 2]:
  //   p *= 0.99 -> [0.8811, -1.8612]
  //   m = 0.9 * [0.05, -0.1] + 0.1 * [-0.5, 2] = [-0.005, 0.11]
  //   v = 0.999 * [0.00025, 0.001] + 0.001 * [0.25, 4] = [0.00049975, 0.004999]
  //   bc1 = 1 - 0.81 = 0.19;  bc2 = 1 - 0.998001 = 0.001999
  //   p -= 0.1 / bc1 * m / (sqrt(v) / sqrt(bc2) + 1e-8)
  //     first:  sqrt(0.00049975 / 0.001999) = 0.5, so the step is 0.1 * (-0.005 / 0.19) / 0.5 = -0.0052631579
  set_grad(p, {-0.5, 2});
  opt.step();
  double bc1 = 0.19, bc2 = 0.001999;
  double step0 = 0.1 / bc1 * -0.005 / (std::sqrt(0.00049975) / std::sqrt(bc2) + 1e-8);
  double step1 = 0.1 / bc1 * 0.11 / (std::sqrt(0.004999) / std::sqrt(bc2) + 1e-8);
  EXPECT_NEAR(step0, -0.0052631579, 1e-9);
  expect_values(p, {0.8811 - step0, -1.8612 - step1});
  EXPECT_EQ(opt.state(0).at("step").item(), 2.0);
}

TEST(OptimAdamW, ZeroWeightDecayGroupIsNotDecayed) {
  Tensor w = param({1}), b = param({1});
  optim::AdamW opt({{.name = "decay", .params = {w}}, {.name = "exclude", .params = {b}, .weight_decay = 0.0}},
                   {.lr = 0.1, .weight_decay = 0.5});
  // With a zero gradient m = v = 0, so only the decay moves w: w = 1 * (1 - 0.1 * 0.5) = 0.95; b stays 1.
  set_grad(w, {0});
  set_grad(b, {0});
  opt.step();
  expect_values(w, {0.95});
  expect_values(b, {1});
}

// ---- groups, lr and errors ----

TEST(Optim, SetLrKeepsGroupRatios) {
  Tensor a = param({1}), b = param({1});
  optim::SGD opt({{.name = "body", .params = {a}}, {.name = "head", .params = {b}, .lr = 0.01}}, {.lr = 0.1});
  EXPECT_DOUBLE_EQ(opt.param_groups()[1].lr_scale, 0.1);
  opt.set_lr(0.4);
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr, 0.4);
  EXPECT_DOUBLE_EQ(opt.param_groups()[1].lr, 0.04);
}

TEST(Optim, ZeroGrad) {
  Tensor a = param({1, 2});
  optim::SGD opt({a}, {.lr = 0.1});
  set_grad(a, {3, 4});
  opt.zero_grad(/*set_to_none=*/false);
  expect_values(a.grad(), {0, 0});
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Optim, Errors) {
  Tensor a = param({1, 2});
  expect_error([] { optim::SGD(std::vector<optim::ParamGroupSpec>{}, {}); }, "optim::SGD: no parameter groups given");
  expect_error(
      [&] {
        optim::SGD({{.name = "decay", .params = {a}}, {.name = "exclude"}}, {});
      },
      "optim::SGD: parameter group 1 ('exclude') has no parameters");
  expect_error([] { optim::AdamW(std::vector<Tensor>{}, {}); },
               "optim::AdamW: parameter group 0 ('params') has no parameters");
  expect_error([&] { optim::SGD({a, a}, {}); }, "appears more than once");
  expect_error([] { optim::SGD({zeros({2})}, {}); }, "parameter 0 of shape [2] does not require a gradient");
  expect_error([&] { optim::SGD({mul(a, 2.0)}, {}); }, "is not a leaf tensor");
  expect_error([&] { optim::SGD({a}, {.lr = -1}); }, "lr must be >= 0, got -1");
  expect_error([&] { optim::SGD({a}, {.momentum = 1.5}); }, "momentum must be in [0, 1), got 1.5");
  expect_error([&] { optim::SGD({a}, {.nesterov = true}); }, "nesterov needs momentum > 0");
  expect_error([&] { optim::AdamW({a}, {.beta2 = 1.0}); }, "betas must be in [0, 1)");
  expect_error([&] { optim::LARS({a}, {.eta = 0}); }, "eta (trust coefficient) must be positive");
  optim::SGD opt({a}, {.lr = 0.1});
  a.set_grad(zeros({3}));
  expect_error([&] { opt.step(); }, "gradient of shape [3] for parameter 0 of shape [2]");
  expect_error([&] { opt.state(4); }, "parameter index 4 out of range (1 parameters)");
}

// ---- schedules ----

TEST(OptimSchedule, WarmupCosine) {
  optim::WarmupCosineSchedule s({.base = 0.4, .final_value = 0.0, .warmup_steps = 10, .total_steps = 110});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(5), 0.2);   // 0.4 * 5 / 10
  EXPECT_DOUBLE_EQ(s.lr_at(10), 0.4);  // cosine starts at base
  // step 35: progress (35 - 10) / 100 = 0.25: 0.4 * (1 + cos(pi / 4)) / 2 = 0.2 * 1.7071068 = 0.34142136
  EXPECT_NEAR(s.lr_at(35), 0.34142136, 1e-8);
  EXPECT_NEAR(s.lr_at(60), 0.2, 1e-12);  // progress 0.5: 0.4 * (1 + 0) / 2
  EXPECT_DOUBLE_EQ(s.lr_at(110), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(500), 0.0);

  // warmup from 0.1, final 0.04: step 5 = 0.1 + 0.3 * 0.5 = 0.25; step 60 = 0.04 + 0.36 * 0.5 = 0.22
  optim::WarmupCosineSchedule t(
      {.base = 0.4, .final_value = 0.04, .warmup_steps = 10, .total_steps = 110, .warmup_start = 0.1});
  EXPECT_DOUBLE_EQ(t.lr_at(5), 0.25);
  EXPECT_NEAR(t.lr_at(60), 0.22, 1e-12);
  EXPECT_DOUBLE_EQ(t.lr_at(110), 0.04);

  // Increasing, no warmup (BYOL's EMA tau): 0.996 -> 1; halfway 0.998.
  optim::WarmupCosineSchedule tau({.base = 0.996, .final_value = 1.0, .total_steps = 100});
  EXPECT_DOUBLE_EQ(tau.lr_at(0), 0.996);
  EXPECT_NEAR(tau.lr_at(50), 0.998, 1e-12);

  expect_error([] { optim::WarmupCosineSchedule({.warmup_steps = 5, .total_steps = 3}); },
               "warmup_steps 5 must be in [0, total_steps = 3]");
}

TEST(OptimSchedule, StepAndConstantAndApply) {
  optim::StepSchedule s(0.1, {30, 60}, 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(29), 0.1);
  EXPECT_NEAR(s.lr_at(30), 0.01, 1e-15);
  EXPECT_NEAR(s.lr_at(59), 0.01, 1e-15);
  EXPECT_NEAR(s.lr_at(60), 0.001, 1e-15);
  EXPECT_DOUBLE_EQ(optim::ConstantSchedule(0.3).lr_at(1000), 0.3);
  expect_error([] { optim::StepSchedule(0.1, {60, 30}); }, "milestones must increase, got 60 before 30");

  Tensor a = param({1}), b = param({1});
  optim::SGD opt({{.params = {a}}, {.params = {b}, .lr = 0.05}}, {.lr = 0.1});
  optim::WarmupCosineSchedule wc({.base = 0.4, .warmup_steps = 10, .total_steps = 110});
  wc.apply(opt, 5);  // 0.2 for the default group, 0.2 * 0.05 / 0.1 = 0.1 for the other
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr, 0.2);
  EXPECT_DOUBLE_EQ(opt.param_groups()[1].lr, 0.1);
}

}  // namespace
}  // namespace siam::test

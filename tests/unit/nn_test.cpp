// nn modules: torchvision-style naming, lookup, train/eval, zero_grad, PyTorch default initializations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "engine/core/random.h"
#include "engine/nn/activation.h"
#include "engine/nn/batchnorm.h"
#include "engine/nn/conv.h"
#include "engine/nn/dropout.h"
#include "engine/nn/init.h"
#include "engine/nn/linear.h"
#include "engine/nn/pool.h"
#include "engine/nn/sequential.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

namespace siam::test {
namespace {

using std::make_shared;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> names_of(const nn::NamedTensors& named) {
  std::vector<std::string> v;
  for (const auto& [n, t] : named) v.push_back(n);
  return v;
}

// Sample mean and standard deviation of all elements.
std::pair<double, double> mean_std(const Tensor& t) {
  auto v = t.to_vector<double>();
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, std::sqrt(s / static_cast<double>(v.size() - 1))};
}

std::pair<double, double> min_max(const Tensor& t) {
  auto v = t.to_vector<double>();
  return {*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
}

// A torchvision BasicBlock's parameter layout: conv1, bn1, conv2, bn2, downsample = Sequential(conv, bn).
class Block : public nn::Module {
 public:
  Block(int64_t in, int64_t out, int64_t stride) : Module("Block") {
    conv1 = register_module(
        "conv1", make_shared<nn::Conv2d>(in, out, 3, nn::Conv2dOptions{.stride = stride, .padding = 1, .bias = false}));
    bn1 = register_module("bn1", make_shared<nn::BatchNorm2d>(out));
    conv2 =
        register_module("conv2", make_shared<nn::Conv2d>(out, out, 3, nn::Conv2dOptions{.padding = 1, .bias = false}));
    bn2 = register_module("bn2", make_shared<nn::BatchNorm2d>(out));
    if (stride != 1 || in != out)
      downsample = register_module(
          "downsample", make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                            make_shared<nn::Conv2d>(in, out, 1, nn::Conv2dOptions{.stride = stride, .bias = false}),
                            make_shared<nn::BatchNorm2d>(out)}));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = relu((*bn1)(conv1->forward(x)));
    y = (*bn2)(conv2->forward(y));
    return relu(add(y, downsample ? downsample->forward(x) : x));
  }
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Sequential> downsample;
};

TEST(NnModule, TorchvisionStyleNamesAndShapes) {
  // layer1 = Sequential(Block(4, 8, stride 2), Block(8, 8, stride 1)) inside a root with a stem conv + bn.
  auto root = make_shared<nn::Sequential>();
  root->push_back("conv1",
                  make_shared<nn::Conv2d>(3, 4, 7, nn::Conv2dOptions{.stride = 2, .padding = 3, .bias = false}));
  root->push_back("bn1", make_shared<nn::BatchNorm2d>(4));
  root->push_back("layer1", make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                                make_shared<Block>(4, 8, 2), make_shared<Block>(8, 8, 1)}));
  EXPECT_THAT(names_of(root->named_parameters()),
              ElementsAre("conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.0.bn1.weight",
                          "layer1.0.bn1.bias", "layer1.0.conv2.weight", "layer1.0.bn2.weight", "layer1.0.bn2.bias",
                          "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight", "layer1.0.downsample.1.bias",
                          "layer1.1.conv1.weight", "layer1.1.bn1.weight", "layer1.1.bn1.bias", "layer1.1.conv2.weight",
                          "layer1.1.bn2.weight", "layer1.1.bn2.bias"));
  EXPECT_THAT(
      names_of(root->named_buffers()),
      ElementsAre("bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.bn1.running_mean",
                  "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked", "layer1.0.bn2.running_mean",
                  "layer1.0.bn2.running_var", "layer1.0.bn2.num_batches_tracked", "layer1.0.downsample.1.running_mean",
                  "layer1.0.downsample.1.running_var", "layer1.0.downsample.1.num_batches_tracked",
                  "layer1.1.bn1.running_mean", "layer1.1.bn1.running_var", "layer1.1.bn1.num_batches_tracked",
                  "layer1.1.bn2.running_mean", "layer1.1.bn2.running_var", "layer1.1.bn2.num_batches_tracked"));
  // state_dict: per module its parameters then its buffers (torch order).
  auto sd = names_of(root->state_dict());
  ASSERT_GE(sd.size(), 5u);
  EXPECT_THAT(std::vector<std::string>(sd.begin(), sd.begin() + 6),
              ElementsAre("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                          "bn1.num_batches_tracked"));
  EXPECT_EQ(sd.size(), 36u);

  EXPECT_EQ(root->param("conv1.weight").shape(), (Shape{4, 3, 7, 7}));
  EXPECT_EQ(root->param("layer1.0.conv1.weight").shape(), (Shape{8, 4, 3, 3}));
  EXPECT_EQ(root->param("layer1.0.downsample.0.weight").shape(), (Shape{8, 4, 1, 1}));
  EXPECT_EQ(root->param("layer1.1.bn2.bias").shape(), (Shape{8}));
  EXPECT_EQ(root->buffer("layer1.0.bn1.running_var").shape(), (Shape{8}));
  Tensor nbt = root->buffer("bn1.num_batches_tracked");
  EXPECT_EQ(nbt.dtype(), DType::i64);
  EXPECT_EQ(nbt.dim(), 0);
  EXPECT_EQ(root->module("layer1.0.downsample").type_name(), "Sequential");
  EXPECT_EQ(root->num_parameters(),
            4 * 3 * 49 + 2 * 4 + (8 * 4 * 9 + 8 * 8 * 9 + 8 * 4 + 3 * 16) + (2 * 8 * 8 * 9 + 32));

  // A forward pass runs through the whole tree.
  manual_seed(3);
  Tensor y = (*root)(randn({2, 3, 16, 16}));
  EXPECT_EQ(y.shape(), (Shape{2, 8, 4, 4}));
}

TEST(NnModule, ParametersAreLeavesBuffersAreNot) {
  nn::BatchNorm2d bn(3);
  for (const auto& [n, p] : bn.named_parameters()) {
    EXPECT_TRUE(p.is_leaf()) << n;
    EXPECT_TRUE(p.requires_grad()) << n;
  }
  for (const auto& [n, b] : bn.named_buffers()) EXPECT_FALSE(b.requires_grad()) << n;
  EXPECT_EQ(bn.weight().to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(bn.bias().to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(bn.running_mean().to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(bn.running_var().to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(bn.num_batches_tracked().item(), 0.0);

  nn::BatchNorm2d plain(3, {.affine = false, .track_running_stats = false});
  EXPECT_TRUE(plain.named_parameters().empty());
  EXPECT_TRUE(plain.named_buffers().empty());
}

TEST(NnModule, LookupErrorsNameTheCulprit) {
  nn::Sequential seq({make_shared<nn::Linear>(2, 3), make_shared<nn::ReLU>(), make_shared<nn::Linear>(3, 1)});
  EXPECT_TRUE(seq.param("0.weight").same(seq.named_parameters()[0].second));
  try {
    seq.param("0.wieght");
    FAIL() << "expected siam::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no parameter named '0.wieght'"));
    EXPECT_THAT(e.what(), HasSubstr("0.weight, 0.bias, 2.weight, 2.bias"));
  }
  try {
    seq.param("5.weight");
    FAIL() << "expected siam::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("has no child '5'"));
    EXPECT_THAT(e.what(), HasSubstr("children: 0, 1, 2"));
  }
  EXPECT_THROW(seq.buffer("0.running_mean"), Error);
  EXPECT_THROW(seq.module("7"), Error);
  EXPECT_TRUE(seq.has_param("2.bias"));
  EXPECT_FALSE(seq.has_param("1.bias"));
}

TEST(NnModule, RegistrationErrors) {
  nn::Module m("Custom");
  m.register_parameter("w", zeros({2}));
  auto expect_error = [](auto fn, const char* text) {
    try {
      fn();
      FAIL() << "expected siam::Error containing " << text;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(text));
    }
  };
  expect_error([&] { m.register_parameter("w", zeros({2})); }, "already has a parameter, buffer or child named 'w'");
  expect_error([&] { m.register_buffer("w", zeros({2})); }, "already has");
  expect_error([&] { m.register_parameter("a.b", zeros({2})); }, "contains '.'");
  expect_error([&] { m.register_parameter("", zeros({2})); }, "the name is empty");
  expect_error([&] { m.register_parameter("idx", zeros({2}, DType::i64)); }, "must be floating");
  expect_error([&] { m.register_module("child", std::shared_ptr<nn::Module>()); }, "is null");
  expect_error([&] { m.forward(zeros({1})); }, "Custom: this module has no single-input forward");
  expect_error([] { nn::Linear(0, 3); }, "must be positive");
  expect_error([] { nn::Conv2d(4, 6, 3, {.groups = 4}); }, "groups = 4 must divide");
  expect_error([] { nn::BatchNorm2d(4)(zeros({2, 4})); }, "expects input (N, C, H, W)");
  expect_error([] { nn::Linear(4, 2)(zeros({3, 5})); }, "should end in 4 features");
}

TEST(NnModule, TrainEvalIsRecursiveAndChangesBatchNorm) {
  auto bn = make_shared<nn::BatchNorm1d>(2);
  nn::Sequential seq(
      {make_shared<nn::Linear>(2, 2), make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{bn})});
  EXPECT_TRUE(bn->is_training());
  seq.eval();
  EXPECT_FALSE(seq.is_training());
  EXPECT_FALSE(bn->is_training());
  EXPECT_FALSE(seq[0].is_training());
  seq.train();
  EXPECT_TRUE(bn->is_training());

  // x: channel 0 = {1, 3}, channel 1 = {2, 6}. Batch mean (2, 4), biased var (1, 4), unbiased var (2, 8).
  Tensor x = from_vector({1, 2, 3, 6}, {2, 2});
  Tensor y = (*bn)(x);
  // training: normalized with batch stats: (1-2)/sqrt(1+eps) = -1, (2-4)/sqrt(4+eps) = -1, ...
  auto yv = y.to_vector<float>();
  EXPECT_NEAR(yv[0], -1.0, 1e-4);
  EXPECT_NEAR(yv[1], -1.0, 1e-4);
  EXPECT_NEAR(yv[2], 1.0, 1e-4);
  EXPECT_NEAR(yv[3], 1.0, 1e-4);
  // running_mean = 0.9 * 0 + 0.1 * (2, 4) = (0.2, 0.4); running_var = 0.9 * 1 + 0.1 * (2, 8) = (1.1, 1.7)
  auto rm = bn->running_mean().to_vector<float>(), rv = bn->running_var().to_vector<float>();
  EXPECT_NEAR(rm[0], 0.2, 1e-6);
  EXPECT_NEAR(rm[1], 0.4, 1e-6);
  EXPECT_NEAR(rv[0], 1.1, 1e-6);
  EXPECT_NEAR(rv[1], 1.7, 1e-6);
  EXPECT_EQ(bn->num_batches_tracked().item(), 1.0);

  // eval: uses the running stats and leaves them alone: (1 - 0.2) / sqrt(1.1 + 1e-5)
  seq.eval();
  auto ye = (*bn)(x).to_vector<float>();
  EXPECT_NEAR(ye[0], (1 - 0.2) / std::sqrt(1.1 + 1e-5), 1e-5);
  EXPECT_NEAR(ye[3], (6 - 0.4) / std::sqrt(1.7 + 1e-5), 1e-5);
  EXPECT_NEAR(bn->running_mean().to_vector<float>()[0], 0.2, 1e-6);
  EXPECT_EQ(bn->num_batches_tracked().item(), 1.0);

  // momentum nullopt: cumulative average (factor 1 / num_batches_tracked = 1 on the first batch).
  nn::BatchNorm1d cum(2, {.momentum = std::nullopt});
  cum(x);
  auto cm = cum.running_mean().to_vector<float>();
  EXPECT_NEAR(cm[0], 2.0, 1e-6);
  EXPECT_NEAR(cm[1], 4.0, 1e-6);
}

TEST(NnModule, ZeroGrad) {
  nn::Linear lin(3, 2);
  Tensor x = from_vector({1, 2, 3}, {1, 3});
  sum(lin(x)).backward();
  ASSERT_TRUE(lin.weight().grad().defined());
  // d sum(x W^T + b) / dW = x for each output row.
  EXPECT_EQ(lin.weight().grad().to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  lin.zero_grad(/*set_to_none=*/false);
  ASSERT_TRUE(lin.weight().grad().defined());
  EXPECT_EQ(lin.weight().grad().to_vector<float>(), (std::vector<float>(6, 0.0f)));
  EXPECT_EQ(lin.bias().grad().to_vector<float>(), (std::vector<float>(2, 0.0f)));
  lin.zero_grad();
  EXPECT_FALSE(lin.weight().grad().defined());
  EXPECT_FALSE(lin.bias().grad().defined());
}

TEST(NnModule, LinearForwardAndDefaultInit) {
  manual_seed(7);
  nn::Linear lin(100, 50);
  double bound = 1.0 / std::sqrt(100.0);  // kaiming_uniform_(a = sqrt(5)): 1 / sqrt(fan_in)
  auto [wlo, whi] = min_max(lin.weight());
  EXPECT_GE(wlo, -bound);
  EXPECT_LE(whi, bound);
  EXPECT_LT(wlo, -0.95 * bound);  // 5000 draws reach close to both ends
  EXPECT_GT(whi, 0.95 * bound);
  // U(-b, b) has std b / sqrt(3).
  EXPECT_NEAR(mean_std(lin.weight()).second, bound / std::sqrt(3.0), 0.03 * bound / std::sqrt(3.0));
  auto [blo, bhi] = min_max(lin.bias());
  EXPECT_GE(blo, -bound);
  EXPECT_LE(bhi, bound);

  // Same seed, same weights.
  manual_seed(7);
  nn::Linear again(100, 50);
  EXPECT_EQ(again.weight().to_vector<float>(), lin.weight().to_vector<float>());

  nn::Linear small(2, 2);
  {
    NoGradGuard ng;
    Tensor w = small.weight(), b = small.bias();
    w.copy_(from_vector({1, 2, 3, 4}, {2, 2}));
    b.copy_(from_vector({10, 20}, {2}));
  }
  // (1, 1) W^T + b = (1 + 2 + 10, 3 + 4 + 20)
  EXPECT_EQ(small(from_vector({1, 1}, {1, 2})).to_vector<float>(), (std::vector<float>{13, 27}));
  nn::Linear nobias(2, 3, false);
  EXPECT_FALSE(nobias.bias().defined());
  EXPECT_EQ(nobias.named_parameters().size(), 1u);
}

TEST(NnModule, Conv2dDefaultInitAndForward) {
  manual_seed(11);
  nn::Conv2d conv(16, 32, 3, {.padding = 1});
  double bound = 1.0 / std::sqrt(16.0 * 9.0);
  auto [lo, hi] = min_max(conv.weight());
  EXPECT_GE(lo, -bound);
  EXPECT_LE(hi, bound);
  EXPECT_LT(lo, -0.95 * bound);
  auto [blo, bhi] = min_max(conv.bias());
  EXPECT_GE(blo, -bound);
  EXPECT_LE(bhi, bound);
  EXPECT_EQ(conv(randn({2, 16, 8, 8})).shape(), (Shape{2, 32, 8, 8}));

  nn::Conv2d grouped(8, 16, {3, 1}, {.stride = {2, 1}, .groups = 4, .bias = false});
  EXPECT_EQ(grouped.weight().shape(), (Shape{16, 2, 3, 1}));
  EXPECT_FALSE(grouped.bias().defined());
  EXPECT_EQ(grouped(randn({1, 8, 9, 5})).shape(), (Shape{1, 16, 4, 5}));
}

TEST(NnModule, PoolingAndSimpleModules) {
  Tensor x = randn({2, 3, 8, 8});
  EXPECT_EQ(nn::MaxPool2d(3, 2, 1)(x).shape(), (Shape{2, 3, 4, 4}));
  EXPECT_EQ(nn::AdaptiveAvgPool2d(1)(x).shape(), (Shape{2, 3, 1, 1}));
  EXPECT_EQ(nn::Flatten()(nn::AdaptiveAvgPool2d(1)(x)).shape(), (Shape{2, 3}));
  EXPECT_TRUE(nn::Identity()(x).same(x));
  Tensor r = nn::ReLU()(from_vector({-1, 2}, {2}));
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{0, 2}));
  // An empty Sequential is the identity.
  EXPECT_TRUE(nn::Sequential()(x).same(x));
}

TEST(NnModule, DropoutOnlyWhileTraining) {
  manual_seed(5);
  nn::Dropout drop(0.25);
  Tensor x = ones({10000});
  auto v = drop(x).to_vector<float>();
  int64_t zeros_seen = 0;
  for (float e : v) {
    if (e == 0.0f)
      ++zeros_seen;
    else
      EXPECT_FLOAT_EQ(e, 1.0f / 0.75f);  // survivors scaled by 1 / (1 - p)
  }
  EXPECT_NEAR(static_cast<double>(zeros_seen) / 10000.0, 0.25, 0.02);
  drop.eval();
  EXPECT_TRUE(drop(x).same(x));
  EXPECT_THROW(nn::Dropout(1.0), Error);
}

TEST(NnModule, ToDtypeKeepsLeavesAndSharing) {
  auto shared = make_shared<nn::Linear>(2, 2);
  nn::Sequential seq({shared, make_shared<nn::ReLU>(), shared, make_shared<nn::BatchNorm1d>(2)});
  // A module reachable twice is listed once.
  EXPECT_THAT(names_of(seq.named_parameters()), ElementsAre("0.weight", "0.bias", "3.weight", "3.bias"));
  auto before = seq.param("0.weight").to_vector<double>();
  seq.to(DType::f64);
  Tensor w = seq.param("0.weight");
  EXPECT_EQ(w.dtype(), DType::f64);
  EXPECT_TRUE(w.is_leaf());
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(shared->weight().same(w));
  EXPECT_EQ(w.to_vector<double>(), before);
  EXPECT_EQ(seq.buffer("3.running_var").dtype(), DType::f64);
  EXPECT_EQ(seq.buffer("3.num_batches_tracked").dtype(), DType::i64);  // not floating: left alone
}

TEST(NnModule, StrListsTheTree) {
  nn::Sequential seq({make_shared<nn::Linear>(2, 4), make_shared<nn::ReLU>()});
  std::string s = seq.str();
  EXPECT_THAT(s, HasSubstr("Sequential()"));
  EXPECT_THAT(s, HasSubstr("  0: Linear(in_features=2, out_features=4, bias=true)"));
  EXPECT_THAT(s, HasSubstr("  1: ReLU()"));
}

// ---- init ----

TEST(NnInit, UniformAndNormal) {
  manual_seed(1);
  Tensor t = empty({100000});
  nn::init::uniform_(t, -2.0, 3.0);
  auto [lo, hi] = min_max(t);
  EXPECT_GE(lo, -2.0);
  EXPECT_LT(hi, 3.0);
  auto [m, s] = mean_std(t);
  EXPECT_NEAR(m, 0.5, 0.02);
  EXPECT_NEAR(s, 5.0 / std::sqrt(12.0), 0.01);

  nn::init::normal_(t, 1.0, 0.5);
  std::tie(m, s) = mean_std(t);
  EXPECT_NEAR(m, 1.0, 0.01);
  EXPECT_NEAR(s, 0.5, 0.005);

  nn::init::constant_(t, 0.25);
  EXPECT_EQ(min_max(t), std::make_pair(0.25, 0.25));
  nn::init::ones_(t);
  EXPECT_EQ(min_max(t), std::make_pair(1.0, 1.0));
  nn::init::zeros_(t);
  EXPECT_EQ(min_max(t), std::make_pair(0.0, 0.0));
}

TEST(NnInit, WorksOnLeavesThatRequireGrad) {
  Tensor p = zeros({4, 4}, TensorOptions().with_requires_grad(true));
  nn::init::normal_(p);
  EXPECT_TRUE(p.is_leaf());
  EXPECT_TRUE(p.requires_grad());
  EXPECT_GT(min_max(p).second, 0.0);
  Tensor d = zeros({3}, DType::f64);
  nn::init::uniform_(d, 1.0, 2.0);
  EXPECT_GE(min_max(d).first, 1.0);
}

TEST(NnInit, KaimingNormalFanOutRelu) {
  // torchvision ResNet conv init: std = sqrt(2) / sqrt(fan_out), fan_out = 256 * 3 * 3.
  manual_seed(2);
  Tensor w = empty({256, 128, 3, 3});
  nn::init::kaiming_normal_(w, 0.0, nn::init::FanMode::fan_out, nn::init::Nonlinearity::relu);
  double expected = std::sqrt(2.0) / std::sqrt(256.0 * 9.0);
  auto [m, s] = mean_std(w);
  EXPECT_NEAR(m, 0.0, 0.01 * expected);
  EXPECT_NEAR(s, expected, 0.01 * expected);

  // Defaults (a = 0, fan_in, leaky_relu): std = sqrt(2) / sqrt(fan_in), fan_in = 128 * 9.
  nn::init::kaiming_normal_(w);
  std::tie(m, s) = mean_std(w);
  EXPECT_NEAR(s, std::sqrt(2.0) / std::sqrt(128.0 * 9.0), 0.01 * std::sqrt(2.0) / std::sqrt(128.0 * 9.0));
}

TEST(NnInit, KaimingUniformAndXavierBounds) {
  manual_seed(3);
  Tensor w = empty({64, 32});
  nn::init::kaiming_uniform_(w);  // bound = sqrt(2) * sqrt(3 / 32) = sqrt(6 / 32)
  double b = std::sqrt(6.0 / 32.0);
  auto [lo, hi] = min_max(w);
  EXPECT_GE(lo, -b);
  EXPECT_LE(hi, b);
  EXPECT_GT(hi, 0.95 * b);
  nn::init::xavier_uniform_(w);  // bound = sqrt(6 / (32 + 64))
  b = std::sqrt(6.0 / 96.0);
  std::tie(lo, hi) = min_max(w);
  EXPECT_GE(lo, -b);
  EXPECT_LE(hi, b);
  EXPECT_GT(hi, 0.95 * b);

  auto fans = nn::init::calculate_fan_in_and_fan_out(empty({8, 4, 3, 3}));
  EXPECT_EQ(fans.first, 36);
  EXPECT_EQ(fans.second, 72);
  EXPECT_NEAR(nn::init::calculate_gain(nn::init::Nonlinearity::leaky_relu, std::sqrt(5.0)), std::sqrt(1.0 / 3.0),
              1e-12);
  try {
    nn::init::kaiming_uniform_(empty({5}));
    FAIL() << "expected siam::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("at least 2 dims, got shape [5]"));
  }
}

}  // namespace
}  // namespace siam::test

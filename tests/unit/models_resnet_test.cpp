// ResNet family and heads: torchvision's parameter counts, state_dict names and order, forward FLOPs,
// output shapes for both stems, initialization, zero-init residual, MLP heads and prototypes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "models/heads.h"
#include "models/resnet.h"

namespace siam {
namespace {

using models::ResNetConfig;
using models::Stem;

TEST(ResNet, ParameterCountsMatchTorchvision) {
  // torchvision: sum(p.numel() for p in resnetX().parameters()), len(state_dict()), and 2 * multiply-adds of
  // conv and linear layers at 1x3x224x224 (counted with forward hooks in PyTorch 1.13 / torchvision 0.14).
  struct Want {
    int depth;
    int64_t params, state_entries, param_tensors, flops;
  };
  for (const Want& w : {Want{18, 11689512, 122, 62, 3628146688}, Want{34, 21797672, 218, 110, 7327522816},
                        Want{50, 25557032, 320, 161, 8178368512}, Want{101, 44549160, 626, 314, 15602810880}}) {
    auto m = models::resnet({.depth = w.depth, .num_classes = 1000});
    EXPECT_EQ(m->num_parameters(), w.params) << "resnet" << w.depth;
    EXPECT_EQ(static_cast<int64_t>(m->state_dict().size()), w.state_entries) << "resnet" << w.depth;
    EXPECT_EQ(static_cast<int64_t>(m->parameters().size()), w.param_tensors) << "resnet" << w.depth;
    EXPECT_EQ(m->forward_flops(224, 224), w.flops) << "resnet" << w.depth;
  }
}

TEST(ResNet, StateDictNamesAreTorchvisions) {
  auto m = models::resnet18({.num_classes = 1000});
  auto sd = m->state_dict();
  std::vector<std::string> first, last;
  for (size_t i = 0; i < 12; ++i) first.push_back(sd[i].first);
  for (size_t i = sd.size() - 8; i < sd.size(); ++i) last.push_back(sd[i].first);
  EXPECT_EQ(first, (std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                             "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
                                             "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean",
                                             "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked"}));
  EXPECT_EQ(last, (std::vector<std::string>{"layer4.1.conv2.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias",
                                            "layer4.1.bn2.running_mean", "layer4.1.bn2.running_var",
                                            "layer4.1.bn2.num_batches_tracked", "fc.weight", "fc.bias"}));
  EXPECT_EQ(m->param("layer2.0.downsample.0.weight").shape(), (Shape{128, 64, 1, 1}));
  EXPECT_TRUE(m->has_buffer("layer2.0.downsample.1.running_var"));
  auto r50 = models::resnet50({.width = 16});  // stage widths 16, 32, 64, 128 (x4 out of each Bottleneck)
  EXPECT_EQ(r50->param("layer3.5.conv3.weight").shape(), (Shape{256, 64, 1, 1}));
  EXPECT_EQ(r50->param("layer4.0.conv2.weight").shape(), (Shape{128, 128, 3, 3}));  // v1.5: stride on the 3x3
  EXPECT_EQ(r50->param("layer4.0.downsample.0.weight").shape(), (Shape{512, 256, 1, 1}));
  EXPECT_FALSE(r50->has_param("fc.weight"));  // num_classes 0: encoder only
  EXPECT_EQ(r50->feature_dim(), 512);
}

TEST(ResNet, StemsWidthAndInputChannels) {
  manual_seed(0);
  auto cifar = models::resnet18({.width = 8, .stem = Stem::cifar, .in_channels = 1});
  EXPECT_EQ(cifar->param("conv1.weight").shape(), (Shape{8, 1, 3, 3}));
  EXPECT_EQ(cifar->feature_dim(), 64);
  Tensor f = (*cifar)(randn({2, 1, 28, 28}));
  EXPECT_EQ(f.shape(), (Shape{2, 64}));
  // 28 -> 28 (layer1) -> 14 -> 7 -> 4: FLOPs count every conv at its output size.
  EXPECT_GT(cifar->forward_flops(28, 28), 0);

  auto imnet = models::resnet50({.width = 16, .num_classes = 7});
  EXPECT_EQ(imnet->param("conv1.weight").shape(), (Shape{16, 3, 7, 7}));
  Tensor logits = (*imnet)(randn({2, 3, 64, 64}));
  EXPECT_EQ(logits.shape(), (Shape{2, 7}));
  EXPECT_EQ(imnet->features(randn({1, 3, 64, 64})).shape(), (Shape{1, 512}));
  EXPECT_THROW((*imnet)(randn({2, 1, 64, 64})), Error);
  EXPECT_THROW(models::resnet({.depth = 20}), Error);
  EXPECT_EQ(models::resnet_depth_from_name("resnet101"), 101);
  EXPECT_THROW(models::resnet_depth_from_name("vgg16"), Error);
  EXPECT_EQ(models::stem_from_name("cifar"), Stem::cifar);
}

TEST(ResNet, TorchvisionInitialization) {
  manual_seed(0);
  auto m = models::resnet50({.width = 16, .num_classes = 10});
  // kaiming_normal_(fan_out, relu): std = sqrt(2 / (out * k * k)).
  Tensor w = m->param("layer3.0.conv2.weight");  // (64, 64, 3, 3)
  double want = std::sqrt(2.0 / (64 * 9));
  double sd = std::sqrt(var(w.flatten(), {0}).item());
  EXPECT_NEAR(sd, want, 0.02 * want);
  EXPECT_NEAR(mean(w).item(), 0.0, 0.02 * want);
  EXPECT_EQ(min(m->param("layer1.0.bn3.weight"), {0}).item(), 1.0);
  EXPECT_EQ(max(m->param("layer1.0.bn3.bias")).item(), 0.0);
  // fc keeps nn.Linear's default U(-1/sqrt(in), 1/sqrt(in)).
  EXPECT_LE(max(m->param("fc.weight")).item(), 1.0 / std::sqrt(512.0));

  auto z = models::resnet50({.width = 16, .zero_init_residual = true});
  EXPECT_EQ(max(z->param("layer2.1.bn3.weight")).item(), 0.0);
  EXPECT_EQ(max(z->param("layer2.1.bn2.weight")).item(), 1.0);
  auto z18 = models::resnet18({.width = 16, .zero_init_residual = true});
  EXPECT_EQ(max(z18->param("layer4.1.bn2.weight")).item(), 0.0);
  EXPECT_EQ(max(z18->param("layer4.1.bn1.weight")).item(), 1.0);
}

TEST(ResNet, BackwardReachesEveryParameter) {
  manual_seed(0);
  auto m = models::resnet18({.width = 4, .stem = Stem::cifar, .in_channels = 1, .num_classes = 3});
  Tensor loss = sum(square((*m)(randn({3, 1, 12, 12}))));
  loss.backward();
  for (const auto& [n, p] : m->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << n;
    EXPECT_GT(max(abs(p.grad())).item(), 0.0) << n;
  }
}

TEST(Heads, ProjectorAndPredictorLayouts) {
  manual_seed(0);
  // SimSiam's projector: three bias-free Linears, BN on every layer, the last one without affine parameters.
  auto proj = models::mlp({.in_dim = 32,
                           .hidden_dim = 64,
                           .out_dim = 16,
                           .layers = 3,
                           .hidden_bias = false,
                           .last_bias = false,
                           .last_bn = true,
                           .last_bn_affine = false});
  std::vector<std::string> names;
  for (auto& [n, t] : proj->state_dict()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                             "1.num_batches_tracked", "3.weight", "4.weight", "4.bias",
                                             "4.running_mean", "4.running_var", "4.num_batches_tracked", "6.weight",
                                             "7.running_mean", "7.running_var", "7.num_batches_tracked"}));
  Tensor z = (*proj)(randn({5, 32}));
  EXPECT_EQ(z.shape(), (Shape{5, 16}));
  // BN without affine on the output: zero mean per feature in training mode.
  EXPECT_LT(max(abs(mean(z, {0}))).item(), 1e-5);

  // BYOL's predictor: Linear, BN, ReLU, Linear (biases on).
  auto pred = models::mlp({.in_dim = 16, .hidden_dim = 40, .out_dim = 16});
  EXPECT_EQ(pred->num_parameters(), 16 * 40 + 40 + 40 + 40 + 40 * 16 + 16);
  EXPECT_EQ(pred->forward_flops(), 2 * (16 * 40 + 40 * 16));
  auto lin = models::mlp({.in_dim = 8, .out_dim = 4, .layers = 1});
  EXPECT_EQ(lin->size(), 1u);
  EXPECT_THROW(models::mlp({.in_dim = 8, .hidden_dim = 0, .out_dim = 4}), Error);
}

TEST(Heads, PrototypesNormalize) {
  manual_seed(0);
  models::Prototypes protos(16, 10);
  EXPECT_TRUE(protos.has_param("weight"));
  protos.normalize_();
  Tensor norms = norm(protos.weight(), {1});
  EXPECT_LT(max(abs(norms - 1.0)).item(), 1e-6);
  EXPECT_TRUE(protos.weight().requires_grad());
  Tensor s = protos(randn({3, 16}));
  EXPECT_EQ(s.shape(), (Shape{3, 10}));
  sum(s).backward();
  EXPECT_TRUE(protos.weight().grad().defined());
  EXPECT_THROW(protos(randn({3, 15})), Error);
}

}  // namespace
}  // namespace siam

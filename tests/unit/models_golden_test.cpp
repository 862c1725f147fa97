// Golden test against PyTorch: tests/golden/make_resnet_golden.py (PyTorch 1.13 + torchvision 0.14, f32, one
// thread) wrote a ResNet-18 (width 16, CIFAR stem, 1 input channel) state_dict under torchvision's names, an
// input batch, the eval- and train-mode features, the parameter gradients of sum(features * r) and the BN
// running statistics after the train-mode step. We load the state_dict by name (strict), run the same
// computation and compare each tensor by its norm-wise relative error ||ours - torch|| / ||torch|| <= 1e-4.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/io/checkpoint.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "models/resnet.h"
#include "tests/unit/test_util.h"

namespace siam {
namespace {

using test::rel_error;

constexpr double kRelTol = 1e-4;

std::string golden_path() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "golden" / "resnet18_w16_cifar.safetensors")
      .string();
}

TEST(ResNetGolden, MatchesPyTorchOutputsAndGradients) {
  io::SafetensorsContents g = io::load_safetensors(golden_path());
  auto model = models::resnet18({.width = 16, .stem = models::Stem::cifar, .in_channels = 1});
  io::NamedTensors state;
  std::vector<std::string> torch_names, our_names;
  for (const auto& [n, t] : g.tensors)
    if (n.rfind("model.", 0) == 0) {
      state.emplace_back(n.substr(6), t);
      torch_names.push_back(n.substr(6));
    }
  for (const auto& [n, t] : model->state_dict()) our_names.push_back(n);
  EXPECT_EQ(our_names, torch_names);                      // the same names in the same order as torch's state_dict()
  io::load_state_dict(*model, state, {}, golden_path());  // conv weights arrive as BF16, converted to f32

  Tensor x = g.get("input");
  {
    NoGradGuard ng;
    model->eval();
    Tensor f = (*model)(x);
    EXPECT_LE(rel_error(f, g.get("features.eval")), kRelTol) << "features.eval";
  }
  model->train();
  Tensor f = (*model)(x);
  EXPECT_LE(rel_error(f, g.get("features.train")), kRelTol) << "features.train";
  sum(mul(f, g.get("loss_weight"))).backward();

  double worst_grad = 0;
  int grads = 0, running = 0;
  for (const auto& [n, t] : g.tensors) {
    if (n.rfind("grad.", 0) == 0) {
      Tensor ours = model->param(n.substr(5)).grad();
      ASSERT_TRUE(ours.defined()) << n;
      double e = rel_error(ours, t);
      EXPECT_LE(e, kRelTol) << n;
      worst_grad = std::max(worst_grad, e);
      ++grads;
    } else if (n.rfind("running.", 0) == 0) {
      EXPECT_LE(rel_error(model->buffer(n.substr(8)), t), kRelTol) << n;
      ++running;
    }
  }
  std::printf("golden: %d gradients, worst norm-wise relative error %.2e (tolerance %.0e)\n", grads, worst_grad,
              kRelTol);
  EXPECT_GE(grads, 50);
  EXPECT_EQ(running, 2 * 20);  // 17 BN layers in the blocks and stem + 3 downsample BNs
}

}  // namespace
}  // namespace siam

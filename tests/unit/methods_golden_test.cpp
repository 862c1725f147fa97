// Each method's loss and parameter gradients against PyTorch: the losses as the methods' reference code
// writes them (tests/golden/make_methods_golden.py wrote tests/golden/methods_golden.safetensors), on the same
// small network and views, both sides in f64. tests/unit/methods_test.cpp checks every method against siam's
// own primitive ops; this checks the formulation itself against an independent implementation (BN-standardized
// cross-correlation, unbiased VICReg statistics, whitening by L^{-T}, the stop-gradients, MoCo's queue logits).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "methods/method.h"
#include "methods/options.h"
#include "models/resnet.h"
#include "tests/unit/test_util.h"

namespace siam {
namespace {

using test::rel_error;

std::string golden_path() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "golden" / "methods_golden.safetensors")
      .string();
}

const io::SafetensorsContents& golden() {
  static const io::SafetensorsContents g = io::load_safetensors(golden_path());
  return g;
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

class MethodGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MethodGolden, LossAndGradientsMatchPyTorch) {
  const std::string name = GetParam();
  const auto& g = golden();
  methods::MethodOptions o = methods::defaults_for(name);
  o.projector.hidden = 24;
  o.projector.out = 12;
  o.predictor.hidden = 10;
  o.predictor.out = 12;
  o.temperature = 0.2;
  o.queue_size = 20;
  o.shuffle_bn_groups = 1;  // one group: the key batch's statistics are those of the unshuffled batch
  o.whiten_size = 16;       // the whole batch: one sub-batch, so the row order does not matter
  auto encoder = std::make_shared<models::ResNet>(
      models::ResNetConfig{.depth = 18, .width = 2, .stem = models::Stem::cifar, .in_channels = 1});
  auto m = methods::make_method(o, encoder);
  m->to(DType::f64);

  // The state: the method's entries of the file; BYOL's target and MoCo's key networks are copies of the
  // online ones at initialization, so they come from encoder.* and projector.*.
  const std::string model = name + ".model.";
  io::NamedTensors state;
  for (const auto& [k, t] : g.tensors)
    if (starts_with(k, model)) state.push_back({k.substr(model.size()), t});
  const size_t online = state.size();
  const std::string frozen = name == "byol" ? "target_" : name == "moco" ? "key_" : "";
  for (size_t i = 0; i < online && !frozen.empty(); ++i)
    if (starts_with(state[i].first, "encoder.") || starts_with(state[i].first, "projector."))
      state.push_back({frozen + state[i].first, state[i].second});
  if (name == "moco") state.push_back({"queue_ptr", zeros({}, DType::i64)});
  io::load_state_dict(*m, state, {}, golden_path());

  std::vector<Tensor> views = {g.get("view0").to(DType::f64), g.get("view1").to(DType::f64)};
  m->zero_grad();
  Tensor loss = m->loss(views, {.step = 0, .total_steps = 10}).loss;
  loss.backward();
  const double ref = g.get(name + ".loss").item();
  EXPECT_NEAR(loss.item(), ref, 1e-9 * (1 + std::abs(ref))) << name;

  int checked = 0;
  for (const auto& [k, p] : m->trainable_parameters()) {
    Tensor r = g.find(name + ".grad." + k);
    ASSERT_TRUE(r.defined()) << name << ": no PyTorch gradient for " << k;
    Tensor ours = p.grad().defined() ? p.grad() : zeros_like(p);
    // The reference is f32-rounded: 1e-5 relative, against at least 1e-6 of its norm (a Linear bias before a
    // BN has a true gradient of zero, and rounding noise / zero is no signal).
    const double err = rel_error(ours, r);
    const double norm = std::sqrt(sum(square(r.to(DType::f64))).item());
    EXPECT_TRUE(err < 1e-5 || err * norm < 1e-9) << name << " " << k << ": relative error " << err << " (|grad| "
                                                  << norm << ")";
    ++checked;
  }
  EXPECT_GT(checked, 20) << name;
}

INSTANTIATE_TEST_SUITE_P(Methods, MethodGolden,
                         ::testing::Values("simclr", "moco", "byol", "simsiam", "barlow_twins", "vicreg", "wmse"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace siam

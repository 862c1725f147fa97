// Model and training checkpoints: bitwise save/load round trips, every kind of state_dict mismatch in one
// error, ignoring heads, dtype conversion on load, and a training checkpoint (model, EMA network, optimizer
// state, method state, RNG, epoch/step) from which training continues exactly as it would have.
#include "tests/unit/test_util.h"
#include "engine/io/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/optim/sgd.h"
#include "models/heads.h"
#include "models/resnet.h"

namespace siam {
namespace {

using test::error_of;
std::string tmp_path(const std::string& name) { return test::tmp_path("checkpoint", name); }

using ::testing::HasSubstr;



bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(), a.nbytes()) == 0;
}

void expect_same_state(const nn::Module& a, const nn::Module& b) {
  auto sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(bitwise_equal(sa[i].second, sb[i].second)) << sa[i].first;
  }
}

// Max |a - b| / max(|b|, 1) over every floating state entry.
double max_state_diff(const nn::Module& a, const nn::Module& b) {
  auto sa = a.state_dict(), sb = b.state_dict();
  double worst = 0;
  for (size_t i = 0; i < sa.size() && i < sb.size(); ++i) {
    if (!is_floating(sa[i].second.dtype())) continue;
    auto x = sa[i].second.to_vector<double>(), y = sb[i].second.to_vector<double>();
    for (size_t k = 0; k < x.size() && k < y.size(); ++k)
      worst = std::max(worst, std::abs(x[k] - y[k]) / std::max(std::abs(y[k]), 1.0));
  }
  return worst;
}

models::ResNetConfig small(int64_t classes = 0) {
  return {.depth = 18, .width = 4, .stem = models::Stem::cifar, .in_channels = 1, .num_classes = classes};
}

TEST(Checkpoint, ModelRoundTripIsBitwise) {
  manual_seed(1);
  auto a = models::resnet(small(10));
  {  // non-trivial running statistics and num_batches_tracked
    a->train();
    (*a)(randn({4, 1, 8, 8}));
  }
  manual_seed(2);
  auto b = models::resnet(small(10));
  std::string p = tmp_path("model.safetensors");
  io::save_model(p, *a, {{"arch", "resnet18"}});
  // Parameters are updated in place: a handle taken before the load sees the new values.
  Tensor w = b->param("conv1.weight");
  io::load_model(p, *b);
  expect_same_state(*a, *b);
  EXPECT_TRUE(bitwise_equal(w, a->param("conv1.weight")));
  EXPECT_TRUE(b->param("conv1.weight").requires_grad());
  EXPECT_EQ(b->buffer("bn1.num_batches_tracked").item(), 1.0);
}

TEST(Checkpoint, ReportsEveryMismatchInOneError) {
  auto m = models::resnet(small(10));
  auto state = m->state_dict();
  io::NamedTensors bad;
  for (auto& [n, t] : state) {
    if (n == "layer1.0.conv1.weight") continue;  // missing
    if (n == "fc.weight")
      bad.emplace_back(n, zeros({5, 32}));  // wrong shape
    else if (n == "bn1.num_batches_tracked")
      bad.emplace_back(n, zeros({}));  // wrong dtype
    else
      bad.emplace_back(n, t);
  }
  bad.emplace_back("projector.0.weight", zeros({2, 2}));  // unexpected
  std::string before = m->param("layer2.0.conv1.weight").str();
  std::string msg = error_of([&] { io::load_state_dict(*m, bad, {}, "ckpt.safetensors"); });
  EXPECT_THAT(msg, HasSubstr("ckpt.safetensors: cannot load into ResNet"));
  EXPECT_THAT(msg, HasSubstr("missing: layer1.0.conv1.weight"));
  EXPECT_THAT(msg, HasSubstr("unexpected: projector.0.weight"));
  EXPECT_THAT(msg, HasSubstr("fc.weight (shape [5, 32], model has [10, 32])"));
  EXPECT_THAT(msg, HasSubstr("bn1.num_batches_tracked (dtype f32, model has i64)"));
  EXPECT_EQ(m->param("layer2.0.conv1.weight").str(), before);  // nothing was changed
  // Non-strict: missing and unexpected names pass, wrong shapes still do not.
  EXPECT_THAT(error_of([&] { io::load_state_dict(*m, bad, {.strict = false}); }),
              ::testing::AllOf(HasSubstr("fc.weight (shape"), ::testing::Not(HasSubstr("missing"))));
}

TEST(Checkpoint, IgnoresHeadsAndConvertsFloatingDtypes) {
  manual_seed(4);
  auto classifier = models::resnet(small(10));
  auto encoder = models::resnet(small(0));
  std::string p = tmp_path("classifier_bf16.safetensors");
  io::save_model(p, *classifier, {}, {.floating_dtype = DType::bf16});
  EXPECT_THAT(error_of([&] { io::load_model(p, *encoder); }), HasSubstr("unexpected: fc.bias, fc.weight"));
  io::load_model(p, *encoder, {.ignore_prefixes = {"fc."}});
  Tensor want = classifier->param("layer3.1.conv2.weight").to(DType::bf16).to(DType::f32);
  EXPECT_TRUE(bitwise_equal(encoder->param("layer3.1.conv2.weight"), want));
  EXPECT_EQ(encoder->param("layer3.1.conv2.weight").dtype(), DType::f32);
}

// One SGD step on a tiny encoder + projector; returns the loss.
double train_step(models::ResNet& net, models::MLP& head, optim::SGD& opt, const Tensor& x) {
  Tensor z = head(net(x));
  Tensor loss = mean(square(z));
  opt.zero_grad();
  loss.backward();
  opt.step();
  return loss.item();
}

TEST(Checkpoint, TrainingCheckpointResumesExactly) {
  manual_seed(7);
  auto net = models::resnet(small());
  auto head = models::mlp({.in_dim = net->feature_dim(), .hidden_dim = 16, .out_dim = 8});
  auto ema = models::resnet(small());
  auto params = net->parameters();
  for (auto& p : head->parameters()) params.push_back(p);
  optim::SGD opt(params, {.lr = 0.1, .momentum = 0.9});
  Tensor x = randn({6, 1, 8, 8});
  train_step(*net, *head, opt, x);

  io::TrainingCheckpoint ck;
  ck.model = net->state_dict();
  for (auto& [n, t] : head->state_dict()) ck.model.emplace_back("projector." + n, t);
  ck.ema = ema->state_dict();
  ck.optimizer = opt.named_state();
  ck.method = {{"queue", randn({5, 8})}, {"queue_ptr", from_vector_i64({3}, {1})}};
  ck.set_rng(default_generator());
  ck.epoch = 2;
  ck.step = 17;
  ck.metadata["method"] = "byol";
  std::string p = tmp_path("train.safetensors");
  io::save_training_checkpoint(p, ck);
  // Copies of what was saved (ck holds the live handles, which the next step updates in place).
  io::NamedTensors saved_model, saved_optim;
  for (auto& [n, t] : ck.model) saved_model.emplace_back(n, t.detach().clone());
  for (auto& [n, t] : ck.optimizer) saved_optim.emplace_back(n, t.detach().clone());

  // Continue in place: the reference.
  Tensor noise_ref = randn({3});
  double loss_ref = train_step(*net, *head, opt, x);

  // Fresh objects, restored from the file.
  manual_seed(99);
  auto net2 = models::resnet(small());
  auto head2 = models::mlp({.in_dim = net2->feature_dim(), .hidden_dim = 16, .out_dim = 8});
  auto ema2 = models::resnet(small());
  auto params2 = net2->parameters();
  for (auto& q : head2->parameters()) params2.push_back(q);
  optim::SGD opt2(params2, {.lr = 0.1, .momentum = 0.9});
  io::TrainingCheckpoint r = io::load_training_checkpoint(p);
  EXPECT_EQ(r.epoch, 2);
  EXPECT_EQ(r.step, 17);
  EXPECT_EQ(r.metadata.at("method"), "byol");
  io::load_state_dict(*net2, r.model, {.ignore_prefixes = {"projector."}});
  io::NamedTensors head_state;
  for (auto& [n, t] : r.model)
    if (n.rfind("projector.", 0) == 0) head_state.emplace_back(n.substr(10), t);
  io::load_state_dict(*head2, head_state);
  io::load_state_dict(*ema2, r.ema);
  opt2.load_named_state(r.optimizer);
  r.restore_rng(default_generator());
  ASSERT_EQ(r.method.size(), 2u);
  EXPECT_TRUE(bitwise_equal(r.method[0].second, ck.method[0].second));
  EXPECT_EQ(r.method[1].first, "queue_ptr");

  // What the file holds comes back bit for bit.
  ASSERT_EQ(r.model.size(), saved_model.size());
  for (size_t i = 0; i < saved_model.size(); ++i) {
    EXPECT_EQ(r.model[i].first, saved_model[i].first);
    EXPECT_TRUE(bitwise_equal(r.model[i].second, saved_model[i].second)) << saved_model[i].first;
  }
  io::NamedTensors loaded_optim = opt2.named_state();
  ASSERT_EQ(loaded_optim.size(), saved_optim.size());
  for (size_t i = 0; i < saved_optim.size(); ++i) {
    EXPECT_EQ(loaded_optim[i].first, saved_optim[i].first);
    EXPECT_TRUE(bitwise_equal(loaded_optim[i].second, saved_optim[i].second)) << saved_optim[i].first;
  }
  // The restored network holds exactly the saved values.
  auto net2_state = net2->state_dict();
  for (size_t i = 0; i < net2_state.size(); ++i)
    EXPECT_TRUE(bitwise_equal(net2_state[i].second, saved_model[i].second)) << net2_state[i].first;
  expect_same_state(*ema, *ema2);
  Tensor noise = randn({3});
  EXPECT_TRUE(bitwise_equal(noise, noise_ref));
  // The next step matches the uninterrupted run bitwise (conv2d's backward is reproducible for a fixed
  // thread count: tests/unit/conv_determinism_test.cpp).
  double loss = train_step(*net2, *head2, opt2, x);
  EXPECT_EQ(loss, loss_ref);
  EXPECT_EQ(max_state_diff(*net2, *net), 0.0);
  EXPECT_EQ(max_state_diff(*head2, *head), 0.0);
  // A model checkpoint is not a training checkpoint.
  std::string mp = tmp_path("model_only.safetensors");
  io::save_model(mp, *net);
  EXPECT_THAT(error_of([&] { io::load_training_checkpoint(mp); }),
              HasSubstr("model_only.safetensors: not a siam training checkpoint"));
}

}  // namespace
}  // namespace siam

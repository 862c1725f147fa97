// Every method on 2 ranks with a per-rank batch B equals one process with batch 2B (Barlow Twins, VICReg and SwAV
// both with gathered rows and with all-reduced statistics, method.batch_stats): the same loss and, after
// DDP's average, the same parameter gradients (to 1e-5 relative), with synchronized batch norms
// (nn::convert_sync_batchnorm) on the ranks and plain ones in the single process. Also five training steps of
// `siam train`'s loop on 2 ranks end in the weights of one process with the doubled batch.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>
#include <tuple>

#include "engine/dist/backends.h"
#include "engine/dist/ddp.h"
#include "engine/nn/batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/sgd.h"
#include "methods/method.h"
#include "tests/dist/ddp_steps.h"
#include "tests/dist/dist_util.h"
#include "tests/unit/test_util.h"
#include "train/config.h"
#include "train/trainer.h"

namespace siam::test {
namespace {

// A test parameter: a method name, or "<name>_all_reduce" for method.batch_stats = all_reduce (barlow_twins,
// vicreg, swav: the batch statistics as all-reduced sums instead of gathered rows).
constexpr std::string_view kAllReduce = "_all_reduce";
bool all_reduce_param(const std::string& p) { return p.ends_with(kAllReduce); }
std::string method_of(const std::string& p) {
  return all_reduce_param(p) ? p.substr(0, p.size() - kAllReduce.size()) : p;
}
std::vector<std::string> params() {
  std::vector<std::string> p = methods::method_names();
  for (const char* m : {"barlow_twins", "vicreg", "swav"}) p.push_back(std::string(m) + std::string(kAllReduce));
  return p;
}

methods::MethodOptions small(const std::string& param) {
  // whitening sub-batches of 16 rows out of the global 32
  methods::MethodOptions o = tiny_method_options(method_of(param));
  o.queue_size = 40;
  o.shuffle_bn_groups = 1;  // MoCo: with global (synchronized) statistics the shuffle does not change the keys
  o.seed = 5;
  if (all_reduce_param(param)) o.batch_stats = "all_reduce";
  return o;
}

std::shared_ptr<methods::Method> build(const std::string& name, uint64_t seed) {
  manual_seed(seed);
  auto m = methods::make_method(small(name), tiny_resnet(2));
  m->to(DType::f64);  // f64, so that 1e-5 measures the algebra and not f32 summation order
  return m;
}

struct Result {
  double loss;
  nn::NamedTensors grads;
};

Result step(methods::Method& m, const std::vector<Tensor>& views) {
  m.zero_grad();
  Tensor l = m.loss(views, {.step = 3, .total_steps = 10}).loss;
  l.backward();
  m.before_optimizer_step({.step = 3, .total_steps = 10});
  Result r{l.item(), {}};
  for (auto& [n, p] : m.trainable_parameters())
    r.grads.emplace_back(n, p.grad().defined() ? p.grad().clone() : zeros_like(p));
  return r;
}

class MethodOnTwoRanks : public ::testing::TestWithParam<std::string> {};

TEST_P(MethodOnTwoRanks, EqualsOneProcessWithTheDoubledBatch) {
  dist::Communicator& world = dist::world();
  ASSERT_EQ(world.world_size(), 2);
  const std::string name = GetParam();
  const int64_t b = 16;  // per rank
  std::vector<Tensor> global_views;
  for (int v = 0; v < 2; ++v) global_views.push_back(global_batch({2 * b, 3, 8, 8}, 100 + v).to(DType::f64));
  if (method_of(name) == "swav")  // multi-crop: two small views too
    for (int v = 0; v < 2; ++v) global_views.push_back(global_batch({2 * b, 3, 4, 4}, 200 + v).to(DType::f64));

  // One process, batch 2B, plain batch norm.
  auto single = dist::detail::make_single("ref", 60);
  auto ref = build(name, 7);
  ref->set_communicator(single.get());
  Result r1 = step(*ref, global_views);

  // Two ranks, batch B each, synchronized batch norm; gradients averaged as DDP does.
  auto m = build(name, 7);
  m->set_communicator(&world);
  nn::convert_sync_batchnorm(*m, &world);
  std::vector<Tensor> mine;
  for (auto& v : global_views) mine.push_back(my_rows(v, world));
  Result r2 = step(*m, mine);
  Tensor loss = from_vector({r2.loss}, {1}, DType::f64);
  world.all_reduce(loss, dist::ReduceOp::avg);
  EXPECT_NEAR(loss.item(), r1.loss, 1e-5 * (1 + std::abs(r1.loss))) << name;
  double scale = 0;
  for (auto& [n, g] : r1.grads) scale = std::max(scale, max_abs(g));
  ASSERT_EQ(r1.grads.size(), r2.grads.size());
  for (size_t i = 0; i < r1.grads.size(); ++i) {
    Tensor avg = rank_average(r2.grads[i].second, world);
    // Gradients that vanish mathematically (biases before a batch norm) are compared with the overall scale.
    EXPECT_REL_NEAR(avg, r1.grads[i].second, 1e-5, name + " " + r1.grads[i].first, 1e-3 * scale);
  }
  // State updates after the step (EMA targets, queues) agree too.
  ref->after_optimizer_step({.step = 3, .total_steps = 10});
  m->after_optimizer_step({.step = 3, .total_steps = 10});
  auto s1 = ref->named_buffers(), s2 = m->named_buffers();
  ASSERT_EQ(s1.size(), s2.size());
  for (size_t i = 0; i < s1.size(); ++i) {
    if (s1[i].first.find("running_") != std::string::npos || s1[i].first.find("num_batches") != std::string::npos)
      continue;  // batch-norm statistics: compared by the SyncBatchNorm tests
    EXPECT_REL_NEAR(s2[i].second.to(DType::f64), s1[i].second.to(DType::f64), 1e-5, name + " " + s1[i].first, 1e-6);
  }
}

// Five SGD steps through DDP (bucketed, overlapped with backward) on 2 ranks end in the weights of five
// single-process steps on the doubled batch; every step draws new views, EMA targets and queues move.
TEST_P(MethodOnTwoRanks, FiveDdpStepsEndInTheWeightsOfOneProcess) {
  dist::Communicator& world = dist::world();
  const std::string name = GetParam();
  auto single = dist::detail::make_single("ref", 60);
  auto ref = build(name, 7);
  ref->set_communicator(single.get());
  auto m = build(name, 7);
  m->set_communicator(&world);
  nn::convert_sync_batchnorm(*m, &world);
  expect_five_ddp_steps_match(method_of(name), *ref, *m, world, kCPU);
}

INSTANTIATE_TEST_SUITE_P(All, MethodOnTwoRanks, ::testing::ValuesIn(params()),
                         [](const auto& info) { return info.param; });


// siam train's loop: 2 ranks x 16 samples for 2 steps (an epoch of 64 samples at global batch 32) end in
// the weights of one process at batch 32: sharding, SyncBN, DDP, the gathered NT-Xent and the optimizer.
TEST(TrainerOnTwoRanks, EndsInTheWeightsOfOneProcessWithTheSameGlobalBatch) {
  dist::Communicator& world = dist::world();
  const std::string base = (std::filesystem::temp_directory_path() / "siam_dist_trainer").string();
  const std::string d1 = base + "_single", d2 = base + "_two";
  auto single = dist::detail::make_single("ref", 60);
  if (world.rank() == 0) {
    std::filesystem::remove_all(d1);
    std::filesystem::remove_all(d2);
  }
  world.barrier();
  train::TrainOptions o1;
  o1.quiet = true;
  o1.comm = single.get();
  o1.write_outputs = world.rank() == 0;
  auto r1 = train::run_training(train::parse_train_config(tiny_train_yaml(d1, 32), "tiny"), o1);
  train::TrainOptions o2;
  o2.quiet = true;
  auto r2 = train::run_training(train::parse_train_config(tiny_train_yaml(d2, 32), "tiny"), o2);
  world.barrier();
  ASSERT_EQ(r1.history.size(), 1u);
  ASSERT_EQ(r2.history.size(), 1u);
  EXPECT_NEAR(r1.history[0].loss, r2.history[0].loss, 1e-5 * std::abs(r1.history[0].loss));
  expect_same_checkpoint_weights(d1, d2, world);
  world.barrier();
}

}  // namespace
}  // namespace siam::test

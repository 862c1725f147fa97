// End to end on the CPU: an MLP (2 -> 64 -> 64 -> 2, ReLU) built from nn modules, trained full-batch with
// cross_entropy on two interleaved spirals, must fit the training set (>= 99 percent accuracy). Exercises
// Linear, ReLU, Sequential, autograd through linear/relu/cross_entropy, and the optimizers' steps.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numbers>

#include "engine/core/random.h"
#include "engine/nn/activation.h"
#include "engine/nn/linear.h"
#include "engine/nn/sequential.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/optim/adamw.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"

namespace siam::test {
namespace {

struct Spirals {
  Tensor x;  // (2N, 2) f32
  Tensor y;  // (2N) i64
};

// Two spirals of n points each, 2 turns, radius 0.2 -> 2.2, class c rotated by c * pi, with N(0, 0.03)
// jitter from the global generator (seeded by the caller).
Spirals make_spirals(int64_t n) {
  Tensor noise = randn({2 * n, 2});
  auto nz = noise.to_vector<double>();
  std::vector<double> xs;
  std::vector<int64_t> ys;
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < n; ++i) {
      double s = static_cast<double>(i) / static_cast<double>(n);
      double angle = s * 4.0 * std::numbers::pi + static_cast<double>(c) * std::numbers::pi;
      double r = 0.2 + 2.0 * s;
      int64_t k = c * n + i;
      xs.push_back(r * std::cos(angle) + 0.03 * nz[2 * k]);
      xs.push_back(r * std::sin(angle) + 0.03 * nz[2 * k + 1]);
      ys.push_back(c);
    }
  return {from_vector(xs, {2 * n, 2}), from_vector_i64(ys, {2 * n})};
}

std::shared_ptr<nn::Sequential> make_mlp() {
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(2, 64), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(64, 64),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(64, 2)});
}

double accuracy(nn::Module& net, const Spirals& d) {
  NoGradGuard ng;
  auto pred = argmax(net(d.x), 1).to_vector<int64_t>();
  auto y = d.y.to_vector<int64_t>();
  int64_t right = 0;
  for (size_t i = 0; i < y.size(); ++i) right += pred[i] == y[i];
  return static_cast<double>(right) / static_cast<double>(y.size());
}

// Full-batch training for up to max_steps; stops once the training set is fitted. Returns the accuracy.
double train(nn::Module& net, optim::Optimizer& opt, const optim::LrSchedule& sched, const Spirals& d,
             int64_t max_steps, double* first_loss, double* last_loss) {
  double acc = 0;
  for (int64_t step = 0; step < max_steps; ++step) {
    sched.apply(opt, step);
    opt.zero_grad();
    Tensor loss = cross_entropy(net(d.x), d.y);
    if (step == 0) *first_loss = loss.item();
    *last_loss = loss.item();
    loss.backward();
    opt.step();
    if (step % 50 == 49 && (acc = accuracy(net, d)) >= 0.995) break;
  }
  return accuracy(net, d);
}

TEST(Spirals, MlpWithAdamWFitsTwoSpirals) {
  manual_seed(2024);
  Spirals d = make_spirals(200);
  auto net = make_mlp();
  optim::AdamW opt(net->parameters(), {.lr = 0.01, .weight_decay = 1e-4});
  optim::WarmupCosineSchedule sched({.base = 0.01, .final_value = 0.001, .warmup_steps = 20, .total_steps = 3000});
  double first = 0, last = 0;
  double acc = train(*net, opt, sched, d, 3000, &first, &last);
  EXPECT_GE(acc, 0.99) << "loss " << first << " -> " << last << " after " << opt.steps_taken() << " steps";
  EXPECT_LT(last, first);
  RecordProperty("steps", static_cast<int>(opt.steps_taken()));
  RecordProperty("accuracy", std::to_string(acc));
}

TEST(Spirals, MlpWithSgdMomentumFitsTwoSpirals) {
  manual_seed(7);
  Spirals d = make_spirals(200);
  auto net = make_mlp();
  optim::SGD opt(net->parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::ConstantSchedule sched(0.1);
  double first = 0, last = 0;
  double acc = train(*net, opt, sched, d, 4000, &first, &last);
  EXPECT_GE(acc, 0.99) << "loss " << first << " -> " << last << " after " << opt.steps_taken() << " steps";
  EXPECT_LT(last, first);
  RecordProperty("steps", static_cast<int>(opt.steps_taken()));
  RecordProperty("accuracy", std::to_string(acc));
}

}  // namespace
}  // namespace siam::test

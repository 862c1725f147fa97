// Five training steps of a method through DDP on the ranks against one process (tests/dist/methods_dist_test.cpp
// on the CPU, tests/dist/cuda_dist_test.cpp on the devices).
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "engine/dist/ddp.h"
#include "engine/optim/sgd.h"
#include "methods/method.h"
#include "tests/dist/dist_util.h"

namespace siam::test {

// Five SGD steps (lr 0.05, momentum 0.9, weight decay 1e-4): `ref` on the doubled batch of 2 x 16 rows per view
// in one process, `m` (already on `dev`, with its communicator and synchronized batch norms) through DDP on this
// rank's 16 rows, moved to `dev`. Every step draws new views (swav: two small crops too), so EMA targets and
// queues move. Then every parameter of m equals ref's (1e-5 relative, floor 1e-3 of the parameter's scale).
inline void expect_five_ddp_steps_match(const std::string& name, methods::Method& ref, methods::Method& m,
                                        dist::Communicator& world, Device dev) {
  const int64_t b = 16;
  auto params = [](methods::Method& x) {
    std::vector<Tensor> v;
    for (auto& [n, p] : x.trainable_parameters()) v.push_back(p);
    return v;
  };
  optim::SGD s1(params(ref), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
  optim::SGD s2(params(m), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
  dist::DistributedDataParallel ddp(m.trainable_parameters(), m.named_buffers(), {.bucket_mb = 0.01}, &world);
  for (int64_t k = 0; k < 5; ++k) {
    methods::StepInfo info{.step = k, .total_steps = 5};
    std::vector<Tensor> views;
    for (int v = 0; v < 2; ++v) views.push_back(global_batch({2 * b, 3, 8, 8}, 1000 + 10 * k + v).to(DType::f64));
    if (name == "swav")
      for (int v = 0; v < 2; ++v) views.push_back(global_batch({2 * b, 3, 4, 4}, 2000 + 10 * k + v).to(DType::f64));
    std::vector<Tensor> mine;
    for (auto& v : views) mine.push_back(my_rows(v, world).to(dev));
    for (auto [method, sgd, vs] : {std::tuple{&ref, &s1, &views}, std::tuple{&m, &s2, &mine}}) {
      Tensor l = method->loss(*vs, info).loss;
      sgd->zero_grad();
      l.backward();
      if (method == &m) ddp.finish();
      method->before_optimizer_step(info);
      sgd->step();
      method->after_optimizer_step(info);
    }
  }
  auto a = ref.named_parameters(), c = m.named_parameters();
  ASSERT_EQ(a.size(), c.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(c[i].second.device(), dev) << name << " " << c[i].first;
    EXPECT_REL_NEAR(c[i].second.to(kCPU), a[i].second, 1e-5, name + " " + a[i].first, 1e-3 * max_abs(a[i].second));
  }
}

}  // namespace siam::test

// conv2d's backward is bitwise reproducible for a fixed thread count (training resume relies on it).
#include <gtest/gtest.h>
#include <omp.h>

#include "engine/core/random.h"
#include "engine/ops/conv.h"
#include "engine/ops/reduce.h"

namespace siam {
namespace {

TEST(ConvDeterminism, WeightGradientIsBitwiseReproducible) {
  Generator g(5);
  Tensor x = randn({64, 16, 28, 28}, g);
  Tensor w0 = randn({16, 16, 3, 3}, g);
  std::vector<float> first;
  for (int run = 0; run < 6; ++run) {
    Tensor w = w0.detach().clone();
    w.set_requires_grad(true);
    sum(conv2d(x, w, Tensor(), {.padding = {1, 1}})).backward();
    auto gw = w.grad().to_vector<float>();
    if (run == 0)
      first = gw;
    else
      ASSERT_EQ(gw, first) << "run " << run << " with " << omp_get_max_threads() << " threads";
  }
}

}  // namespace
}  // namespace siam

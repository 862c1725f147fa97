#include <gtest/gtest.h>
#include "engine/tensor.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
using namespace siam;
TEST(Smoke, AddBackward) {
  Tensor a = from_vector({1, 2, 3}, {3}, TensorOptions(DType::f64).with_requires_grad(true));
  Tensor b = from_vector({4, 5, 6}, {3}, DType::f64);
  Tensor l = sum(mul(a, b));
  l.backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{4, 5, 6}));
}

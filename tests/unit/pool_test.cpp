// Pooling: gradient-check samples for the registry, fast path vs *_ref in f32, output sizes
// (ceil_mode, padding) against PyTorch's formula, and error messages.
#include "tests/unit/test_util.h"
#include "engine/ops/pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/core/random.h"
#include "kernels/cpu/pool.h"
#include "tests/unit/op_samples.h"

namespace siam::test {
namespace {

using test::error_of;

using ::testing::AllOf;
using ::testing::HasSubstr;

Pool2dParams pp(int64_t k, int64_t s, int64_t p, bool ceil = false, bool cip = true) {
  Pool2dParams r;
  r.kernel = {k, k};
  r.stride = {s, s};
  r.padding = {p, p};
  r.ceil_mode = ceil;
  r.count_include_pad = cip;
  return r;
}

OpSample pool_sample(std::string label, Tensor x, std::function<Tensor(const Tensor&)> f) {
  OpSample s;
  s.label = std::move(label);
  s.inputs = {x};
  s.fn = [f](const std::vector<Tensor>& in) { return f(in[0]); };
  return s;
}

SIAM_OP_SAMPLES("max_pool2d") {
  return {
      pool_sample("2x2", rnd({2, 2, 4, 4}), [](const Tensor& x) { return max_pool2d(x, pp(2, 0, 0)); }),
      pool_sample("3x3 s2 p1", rnd({1, 2, 7, 7}), [](const Tensor& x) { return max_pool2d(x, pp(3, 2, 1)); }),
      pool_sample("3x3 s2 ceil", rnd({1, 2, 6, 6}), [](const Tensor& x) { return max_pool2d(x, pp(3, 2, 0, true)); }),
      pool_sample("non-contiguous 3-D", rnd_noncontig({2, 5, 4}),
                  [](const Tensor& x) { return max_pool2d(x, pp(2, 1, 1)); }),
  };
}

SIAM_OP_SAMPLES("avg_pool2d") {
  return {
      pool_sample("2x2", rnd({2, 2, 4, 4}), [](const Tensor& x) { return avg_pool2d(x, pp(2, 0, 0)); }),
      pool_sample("3x3 s2 p1 include pad", rnd({1, 2, 7, 7}),
                  [](const Tensor& x) { return avg_pool2d(x, pp(3, 2, 1)); }),
      pool_sample("3x3 s2 p1 exclude pad ceil", rnd({1, 2, 6, 6}),
                  [](const Tensor& x) { return avg_pool2d(x, pp(3, 2, 1, true, false)); }),
      pool_sample("non-contiguous", rnd_noncontig({2, 2, 5, 5}),
                  [](const Tensor& x) { return avg_pool2d(x, pp(2, 2, 1, true)); }),
  };
}

SIAM_OP_SAMPLES("adaptive_avg_pool2d") {
  return {
      pool_sample("to 1x1", rnd({2, 3, 4, 4}),
                  [](const Tensor& x) {
                    return adaptive_avg_pool2d(x, {1, 1});
                  }),
      pool_sample("7x5 to 3x2 (overlapping)", rnd({1, 2, 7, 5}),
                  [](const Tensor& x) {
                    return adaptive_avg_pool2d(x, {3, 2});
                  }),
      pool_sample("non-contiguous to 2x2", rnd_noncontig({2, 2, 4, 4}),
                  [](const Tensor& x) {
                    return adaptive_avg_pool2d(x, {2, 2});
                  }),
  };
}

TEST(Pool, OutputSizesMatchPyTorch) {
  Tensor x = zeros({1, 1, 6, 6});
  // torch: max_pool2d(6x6, k3 s2) -> 2x2; ceil_mode -> 3x3; k3 s2 p1 -> 3x3; k2 s2 p1 ceil -> 4x4
  EXPECT_EQ(max_pool2d(x, pp(3, 2, 0)).shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(max_pool2d(x, pp(3, 2, 0, true)).shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(max_pool2d(x, pp(3, 2, 1)).shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(avg_pool2d(x, pp(2, 2, 1, true)).shape(), (Shape{1, 1, 4, 4}));
  // 5x5, k2 s2 ceil -> 3 (the last window starts inside the input)
  EXPECT_EQ(avg_pool2d(zeros({1, 5, 5}), pp(2, 2, 0, true)).shape(), (Shape{1, 3, 3}));
}

TEST(Pool, AvgPoolDivisorsMatchPyTorch) {
  // torch.nn.functional.avg_pool2d(torch.ones(1,1,3,3), 2, 2, 1, count_include_pad=...) values
  Tensor x = ones({1, 1, 3, 3});
  auto inc = avg_pool2d(x, pp(2, 2, 1, false, true)).to_vector<float>();
  EXPECT_EQ(inc, (std::vector<float>{0.25f, 0.5f, 0.5f, 1.0f}));
  auto exc = avg_pool2d(x, pp(2, 2, 1, false, false)).to_vector<float>();
  EXPECT_EQ(exc, (std::vector<float>{1, 1, 1, 1}));
}

std::vector<float> vec(const Tensor& t) { return t.to_vector<float>(); }

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float tol, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol) << what << " at " << i;
}

struct PoolCase {
  int64_t P, H, W, k, s, p;
  bool ceil, cip;
};
class PoolFastVsRef : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolFastVsRef, Agree) {
  const PoolCase c = GetParam();
  manual_seed(11);
  Tensor x = uniform({c.P, c.H, c.W}, -1, 1, DType::f32);
  Tensor ym = max_pool2d(x, pp(c.k, c.s, c.p, c.ceil));  // for the output size
  kernels::cpu::Pool2dGeom g;
  g.P = c.P, g.H = c.H, g.W = c.W, g.OH = ym.size(1), g.OW = ym.size(2);
  g.kh = g.kw = c.k, g.sh = g.sw = c.s, g.ph = g.pw = c.p, g.count_include_pad = c.cip;
  const Shape ys{g.P, g.OH, g.OW};
  Tensor y1 = empty(ys), y2 = empty(ys), i1 = empty(ys, DType::i64), i2 = empty(ys, DType::i64);
  kernels::cpu::max_pool2d_forward<float>(g, x.data<float>(), y1.data<float>(), i1.data<int64_t>());
  kernels::cpu::max_pool2d_forward_ref<float>(g, x.data<float>(), y2.data<float>(), i2.data<int64_t>());
  expect_close(vec(y1), vec(y2), 0, "max");
  EXPECT_EQ(i1.to_vector<int64_t>(), i2.to_vector<int64_t>());
  kernels::cpu::avg_pool2d_forward<float>(g, x.data<float>(), y1.data<float>());
  kernels::cpu::avg_pool2d_forward_ref<float>(g, x.data<float>(), y2.data<float>());
  expect_close(vec(y1), vec(y2), 1e-6f, "avg");
  Tensor gy = uniform(ys, -1, 1, DType::f32), gx1 = empty(x.shape()), gx2 = empty(x.shape());
  kernels::cpu::avg_pool2d_backward<float>(g, gy.data<float>(), gx1.data<float>());
  kernels::cpu::avg_pool2d_backward_ref<float>(g, gy.data<float>(), gx2.data<float>());
  expect_close(vec(gx1), vec(gx2), 1e-6f, "avg backward");
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolFastVsRef,
                         ::testing::Values(PoolCase{256, 28, 28, 3, 2, 1, false, true},  // ResNet stem pool
                                           PoolCase{64, 15, 13, 3, 2, 1, true, false},   // ragged, ceil
                                           PoolCase{33, 7, 9, 2, 2, 0, true, true},      // ragged, ceil
                                           PoolCase{8, 32, 32, 2, 2, 0, false, true}));

TEST(AdaptivePool, FastVsRef) {
  manual_seed(5);
  for (auto [H, W, OH, OW] :
       std::vector<std::array<int64_t, 4>>{{4, 4, 1, 1}, {7, 7, 1, 1}, {13, 9, 3, 4}, {5, 5, 7, 7}}) {
    kernels::cpu::Pool2dGeom g;
    g.P = 300, g.H = H, g.W = W, g.OH = OH, g.OW = OW;
    Tensor x = uniform({g.P, H, W}, -1, 1, DType::f32);
    Tensor y1 = empty({g.P, OH, OW}), y2 = empty({g.P, OH, OW});
    kernels::cpu::adaptive_avg_pool2d_forward<float>(g, x.data<float>(), y1.data<float>());
    kernels::cpu::adaptive_avg_pool2d_forward_ref<float>(g, x.data<float>(), y2.data<float>());
    expect_close(vec(y1), vec(y2), 1e-6f, "adaptive forward");
    Tensor gy = uniform({g.P, OH, OW}, -1, 1, DType::f32), gx1 = empty(x.shape()), gx2 = empty(x.shape());
    kernels::cpu::adaptive_avg_pool2d_backward<float>(g, gy.data<float>(), gx1.data<float>());
    kernels::cpu::adaptive_avg_pool2d_backward_ref<float>(g, gy.data<float>(), gx2.data<float>());
    expect_close(vec(gx1), vec(gx2), 1e-6f, "adaptive backward");
  }
}


TEST(Pool, ErrorsNameOpAndShapes) {
  EXPECT_THAT(error_of([] {
                max_pool2d(zeros({4, 4}), pp(2, 2, 0));
              }),
              AllOf(HasSubstr("max_pool2d"), HasSubstr("[4, 4]")));
  EXPECT_THAT(error_of([] {
                avg_pool2d(zeros({1, 1, 4, 4}), pp(2, 2, 2));
              }),
              AllOf(HasSubstr("avg_pool2d"), HasSubstr("padding"), HasSubstr("[1, 1, 4, 4]")));
  EXPECT_THAT(error_of([] {
                max_pool2d(zeros({1, 1, 2, 2}), pp(3, 1, 0));
              }),
              AllOf(HasSubstr("max_pool2d"), HasSubstr("[1, 1, 2, 2]")));
  EXPECT_THAT(error_of([] {
                adaptive_avg_pool2d(zeros({1, 1, 4, 4}), {0, 2});
              }),
              AllOf(HasSubstr("adaptive_avg_pool2d"), HasSubstr("[1, 1, 4, 4]")));
}

}  // namespace
}  // namespace siam::test

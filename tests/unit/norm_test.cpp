// batch_norm and layer_norm: gradient-check samples for the registry, fused fast path vs *_ref in f32,
// running-statistics update vs hand computation, and error messages.
#include "tests/unit/test_util.h"
#include "engine/ops/norm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "engine/core/random.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/norm.h"
#include "tests/unit/op_samples.h"

namespace siam::test {
namespace {

using test::error_of;

using ::testing::AllOf;
using ::testing::HasSubstr;

// Inputs: x, weight, bias (either may be undefined: dropped from the inputs).
OpSample bn_train(std::string label, Tensor x, bool affine) {
  const int64_t C = x.size(1);
  OpSample s;
  s.label = std::move(label);
  s.inputs = {x};
  if (affine) s.inputs = {x, rnd({C}, 0.5, 1.5), rnd({C})};
  s.fn = [C](const std::vector<Tensor>& in) {
    // fresh running stats per call so repeated evaluations see the same function
    Tensor rm = zeros({C}, DType::f64), rv = ones({C}, DType::f64);
    return batch_norm(in[0], rm, rv, in.size() > 1 ? in[1] : Tensor(), in.size() > 2 ? in[2] : Tensor(), true);
  };
  s.atol = 1e-5, s.rtol = 1e-4;
  return s;
}

OpSample bn_eval(std::string label, Tensor x, bool affine) {
  const int64_t C = x.size(1);
  OpSample s;
  s.label = std::move(label);
  s.inputs = {x, rnd({C}), rnd({C}, 0.5, 2.0)};
  s.skip_grad = {false, true, true};  // running statistics are not differentiated
  if (affine) {
    s.inputs.push_back(rnd({C}, 0.5, 1.5));
    s.inputs.push_back(rnd({C}));
  }
  s.fn = [](const std::vector<Tensor>& in) {
    return batch_norm(in[0], in[1], in[2], in.size() > 3 ? in[3] : Tensor(), in.size() > 4 ? in[4] : Tensor(), false);
  };
  return s;
}

SIAM_OP_SAMPLES("batch_norm") {
  return {
      bn_train("train 2d affine", rnd({3, 2, 3, 3}), true),
      bn_train("train 2d no affine", rnd({2, 3, 2, 3}), false),
      bn_train("train 1d (N, C) affine", rnd({6, 4}), true),
      bn_train("train 1d (N, C, L) no affine", rnd({3, 2, 4}), false),
      bn_train("train non-contiguous", rnd_noncontig({4, 3, 2, 2}), true),
      bn_eval("eval 2d affine", rnd({2, 3, 2, 2}), true),
      bn_eval("eval 1d no affine", rnd({5, 3}), false),
  };
}

OpSample ln_sample(std::string label, Tensor x, std::vector<int64_t> ns, bool affine) {
  OpSample s;
  s.label = std::move(label);
  s.inputs = {x};
  Shape nss(ns.begin(), ns.end());
  if (affine) s.inputs = {x, rnd(nss, 0.5, 1.5), rnd(nss)};
  s.fn = [ns](const std::vector<Tensor>& in) {
    return layer_norm(in[0], ns, in.size() > 1 ? in[1] : Tensor(), in.size() > 2 ? in[2] : Tensor());
  };
  s.atol = 1e-5, s.rtol = 1e-4;
  return s;
}

SIAM_OP_SAMPLES("layer_norm") {
  return {
      ln_sample("last dim affine", rnd({4, 6}), {6}, true),
      ln_sample("last dim no affine", rnd({3, 5}), {5}, false),
      ln_sample("last two dims affine", rnd({2, 3, 4}), {3, 4}, true),
      ln_sample("non-contiguous", rnd_noncontig({5, 4}), {4}, true),
  };
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::fabs(va[i] - vb[i]));
  return m;
}

struct BnCase {
  int64_t N, C, L;
  bool affine;
};
class BatchNormFastVsRef : public ::testing::TestWithParam<BnCase> {};

TEST_P(BatchNormFastVsRef, Agree) {
  const auto [N, C, L, affine] = GetParam();
  manual_seed(21);
  Tensor x = uniform({N, C, L}, -2, 3, DType::f32), gy = uniform({N, C, L}, -1, 1, DType::f32);
  Tensor w = uniform({C}, 0.5, 1.5, DType::f32), b = uniform({C}, -1, 1, DType::f32);
  const float* wp = affine ? w.data<float>() : nullptr;
  const float* bp = affine ? b.data<float>() : nullptr;
  Tensor y1 = empty(x.shape()), y2 = empty(x.shape());
  Tensor m1 = empty({C}), m2 = empty({C}), v1 = empty({C}), v2 = empty({C}), s1 = empty({C}), s2 = empty({C});
  kernels::cpu::batch_norm_train_forward<float>(N, C, L, x.data<float>(), wp, bp, 1e-5, y1.data<float>(),
                                                m1.data<float>(), v1.data<float>(), s1.data<float>());
  kernels::cpu::batch_norm_train_forward_ref<float>(N, C, L, x.data<float>(), wp, bp, 1e-5, y2.data<float>(),
                                                    m2.data<float>(), v2.data<float>(), s2.data<float>());
  EXPECT_LT(max_abs_diff(y1, y2), 2e-5);
  EXPECT_LT(max_abs_diff(m1, m2), 1e-6);
  EXPECT_LT(max_abs_diff(v1, v2), 1e-5);
  for (bool train : {true, false}) {
    Tensor gx1 = empty(x.shape()), gx2 = empty(x.shape());
    Tensor gw1 = empty({C}), gw2 = empty({C}), gb1 = empty({C}), gb2 = empty({C});
    kernels::cpu::batch_norm_backward<float>(N, C, L, x.data<float>(), gy.data<float>(), m2.data<float>(),
                                             s2.data<float>(), wp, train, gx1.data<float>(), gw1.data<float>(),
                                             gb1.data<float>());
    kernels::cpu::batch_norm_backward_ref<float>(N, C, L, x.data<float>(), gy.data<float>(), m2.data<float>(),
                                                 s2.data<float>(), wp, train, gx2.data<float>(), gw2.data<float>(),
                                                 gb2.data<float>());
    EXPECT_LT(max_abs_diff(gx1, gx2), 2e-5) << "train=" << train;
    EXPECT_LT(max_abs_diff(gw1, gw2) / static_cast<double>(N * L), 1e-5);
    EXPECT_LT(max_abs_diff(gb1, gb2) / static_cast<double>(N * L), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormFastVsRef,
                         ::testing::Values(BnCase{64, 16, 784, true},  // ResNet (N, C, H*W), 28x28
                                           BnCase{32, 64, 49, false},  // 7x7
                                           BnCase{13, 7, 11, true},    // ragged
                                           BnCase{256, 512, 1, true},  // (N, C) projector
                                           BnCase{5, 3, 1, false}));

TEST(BatchNorm, RunningStatsUpdateMatchesHandComputation) {
  // x (4, 2): channel 0 = {1, 2, 3, 4}, channel 1 = {0, 0, 2, 2}
  Tensor x = from_vector({1, 0, 2, 0, 3, 2, 4, 2}, {4, 2});
  Tensor rm = from_vector({0.5, -1.0}, {2}), rv = from_vector({2.0, 1.0}, {2});
  Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), true, /*momentum=*/0.1, /*eps=*/1e-5);
  // mean {2.5, 1}; biased var {1.25, 1}; unbiased {5/3, 4/3}
  auto m = rm.to_vector<double>(), v = rv.to_vector<double>();
  EXPECT_NEAR(m[0], 0.9 * 0.5 + 0.1 * 2.5, 1e-6);
  EXPECT_NEAR(m[1], 0.9 * -1.0 + 0.1 * 1.0, 1e-6);
  EXPECT_NEAR(v[0], 0.9 * 2.0 + 0.1 * 5.0 / 3.0, 1e-6);
  EXPECT_NEAR(v[1], 0.9 * 1.0 + 0.1 * 4.0 / 3.0, 1e-6);
  auto yv = y.to_vector<double>();
  EXPECT_NEAR(yv[0], (1 - 2.5) / std::sqrt(1.25 + 1e-5), 1e-5);
  EXPECT_NEAR(yv[3], (0 - 1.0) / std::sqrt(1.0 + 1e-5), 1e-5);

  // eval uses the running statistics and leaves them alone
  Tensor ye = batch_norm(x, rm, rv, Tensor(), Tensor(), false);
  EXPECT_NEAR(ye.to_vector<double>()[0], (1 - m[0]) / std::sqrt(v[0] + 1e-5), 1e-5);
  EXPECT_EQ(rm.to_vector<double>(), m);
}

TEST(BatchNorm, RunningStatsNotRecordedOnTape) {
  Tensor x = uniform({4, 3, 2, 2}, -1, 1, DType::f32);
  x.set_requires_grad(true);
  Tensor rm = zeros({3}), rv = ones({3});
  Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), true);
  EXPECT_FALSE(rm.requires_grad());
  EXPECT_TRUE(rm.is_leaf());
  sum(y).backward();
  EXPECT_TRUE(x.grad().defined());
}

TEST(LayerNorm, FastVsRef) {
  manual_seed(31);
  for (auto [R, D] : std::vector<std::pair<int64_t, int64_t>>{{256, 512}, {37, 129}, {1024, 64}}) {
    Tensor x = uniform({R, D}, -2, 3, DType::f32), gy = uniform({R, D}, -1, 1, DType::f32);
    Tensor w = uniform({D}, 0.5, 1.5, DType::f32), b = uniform({D}, -1, 1, DType::f32);
    Tensor y1 = empty({R, D}), y2 = empty({R, D}), m1 = empty({R}), m2 = empty({R}), s1 = empty({R}), s2 = empty({R});
    kernels::cpu::layer_norm_forward<float>(R, D, x.data<float>(), w.data<float>(), b.data<float>(), 1e-5,
                                            y1.data<float>(), m1.data<float>(), s1.data<float>());
    kernels::cpu::layer_norm_forward_ref<float>(R, D, x.data<float>(), w.data<float>(), b.data<float>(), 1e-5,
                                                y2.data<float>(), m2.data<float>(), s2.data<float>());
    EXPECT_LT(max_abs_diff(y1, y2), 2e-5);
    Tensor gx1 = empty({R, D}), gx2 = empty({R, D}), gw1 = empty({D}), gw2 = empty({D}), gb1 = empty({D}),
           gb2 = empty({D});
    kernels::cpu::layer_norm_backward<float>(R, D, x.data<float>(), gy.data<float>(), m2.data<float>(),
                                             s2.data<float>(), w.data<float>(), gx1.data<float>(), gw1.data<float>(),
                                             gb1.data<float>());
    kernels::cpu::layer_norm_backward_ref<float>(R, D, x.data<float>(), gy.data<float>(), m2.data<float>(),
                                                 s2.data<float>(), w.data<float>(), gx2.data<float>(),
                                                 gw2.data<float>(), gb2.data<float>());
    EXPECT_LT(max_abs_diff(gx1, gx2), 2e-5);
    EXPECT_LT(max_abs_diff(gw1, gw2) / static_cast<double>(R), 1e-5);
    EXPECT_LT(max_abs_diff(gb1, gb2) / static_cast<double>(R), 1e-5);
  }
}


TEST(Norm, ErrorsNameOpAndShapes) {
  Tensor x = zeros({4, 3, 2, 2});
  EXPECT_THAT(error_of([&] { batch_norm(x, zeros({4}), ones({3}), Tensor(), Tensor(), true); }),
              AllOf(HasSubstr("batch_norm"), HasSubstr("running_mean"), HasSubstr("[4]"), HasSubstr("[4, 3, 2, 2]")));
  EXPECT_THAT(error_of([&] { batch_norm(x, Tensor(), Tensor(), ones({2}), Tensor(), true); }),
              AllOf(HasSubstr("batch_norm"), HasSubstr("weight"), HasSubstr("[2]")));
  EXPECT_THAT(error_of([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); }),
              AllOf(HasSubstr("batch_norm"), HasSubstr("running"), HasSubstr("[4, 3, 2, 2]")));
  EXPECT_THAT(error_of([&] {
                batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true);
              }),
              AllOf(HasSubstr("batch_norm"), HasSubstr("[1, 3]")));
  EXPECT_THAT(error_of([&] { batch_norm(zeros({5}), Tensor(), Tensor(), Tensor(), Tensor(), true); }),
              AllOf(HasSubstr("batch_norm"), HasSubstr("[5]")));
  EXPECT_THAT(error_of([&] {
                layer_norm(zeros({2, 3}), {4});
              }),
              AllOf(HasSubstr("layer_norm"), HasSubstr("[4]"), HasSubstr("[2, 3]")));
  EXPECT_THAT(error_of([&] {
                layer_norm(zeros({2, 3}), {3}, ones({2}));
              }),
              AllOf(HasSubstr("layer_norm"), HasSubstr("weight"), HasSubstr("[2]")));
}

}  // namespace
}  // namespace siam::test

// conv2d: gradient-check samples for the registry, fast path (im2col + GEMM) and oneDNN path vs conv2d_*_ref in
// f32 at realistic and ragged shapes, and error messages.
#include "tests/unit/test_util.h"
#include "engine/ops/conv.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_onednn.h"
#include "tests/unit/op_samples.h"

namespace siam::test {
namespace {

using test::error_of;

using ::testing::AllOf;
using ::testing::HasSubstr;

Conv2dParams cp(int64_t s, int64_t p, int64_t d = 1, int64_t g = 1) {
  Conv2dParams c;
  c.stride = {s, s};
  c.padding = {p, p};
  c.dilation = {d, d};
  c.groups = g;
  return c;
}

OpSample conv_sample(std::string label, Tensor x, Tensor w, Tensor b, Conv2dParams p) {
  OpSample s;
  s.label = std::move(label);
  s.inputs = {x, w};
  if (b.defined()) s.inputs.push_back(b);
  s.fn = [p](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), p); };
  return s;
}

SIAM_OP_SAMPLES("conv2d") {
  return {
      conv_sample("3x3 s1 p1 bias", rnd({2, 2, 5, 5}), rnd({3, 2, 3, 3}), rnd({3}), cp(1, 1)),
      conv_sample("3x3 s2 p1 bias", rnd({1, 2, 6, 7}), rnd({2, 2, 3, 3}), rnd({2}), cp(2, 1)),
      conv_sample("3x3 dilation 2 p2 no bias", rnd({1, 2, 6, 6}), rnd({2, 2, 3, 3}), Tensor(), cp(1, 2, 2)),
      conv_sample("groups 2", rnd({2, 4, 4, 4}), rnd({4, 2, 3, 3}), rnd({4}), cp(1, 1, 1, 2)),
      conv_sample("1x1 s1 no bias (direct GEMM)", rnd({2, 3, 3, 3}), rnd({4, 3, 1, 1}), Tensor(), cp(1, 0)),
      conv_sample("1x1 s2", rnd({2, 3, 5, 5}), rnd({2, 3, 1, 1}), rnd({2}), cp(2, 0)),
      conv_sample("non-contiguous input, 2x3 kernel", rnd_noncontig({2, 2, 4, 5}), rnd({2, 2, 2, 3}), rnd({2}),
                  cp(1, 1)),
      conv_sample("batched chunk (small map, N=5)", rnd({5, 2, 2, 2}), rnd({2, 2, 2, 2}), rnd({2}), cp(1, 0)),
  };
}

Tensor randf(const Shape& s) { return uniform(s, -1.0, 1.0, DType::f32); }

double max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0, scale = 1e-3;
  for (float v : b) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]) / scale);
  return m;
}

struct ConvCase {
  int64_t N, C, H, W, K, R, S, stride, pad, dil, groups;
  bool bias;
};

kernels::cpu::Conv2dGeom geom_of(const ConvCase& c) {
  kernels::cpu::Conv2dGeom g;
  g.N = c.N, g.C = c.C, g.H = c.H, g.W = c.W, g.K = c.K, g.R = c.R, g.S = c.S;
  g.sh = g.sw = c.stride, g.ph = g.pw = c.pad, g.dh = g.dw = c.dil, g.groups = c.groups;
  g.OH = (g.H + 2 * g.ph - g.dh * (g.R - 1) - 1) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - g.dw * (g.S - 1) - 1) / g.sw + 1;
  return g;
}

class ConvFastVsRef : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvFastVsRef, ForwardAndBackwardAgree) {
  const ConvCase c = GetParam();
  const auto g = geom_of(c);
  manual_seed(7);
  Tensor x = randf({g.N, g.C, g.H, g.W}), w = randf({g.K, g.C / g.groups, g.R, g.S}), b = randf({g.K});
  Tensor gy = randf({g.N, g.K, g.OH, g.OW});
  const float* bp = c.bias ? b.data<float>() : nullptr;
  Tensor y1 = empty({g.N, g.K, g.OH, g.OW}), y2 = empty({g.N, g.K, g.OH, g.OW});
  kernels::cpu::conv2d_forward<float>(g, x.data<float>(), w.data<float>(), bp, y1.data<float>());
  kernels::cpu::conv2d_forward_ref<float>(g, x.data<float>(), w.data<float>(), bp, y2.data<float>());
  EXPECT_LT(max_rel_err(y1.to_vector<float>(), y2.to_vector<float>()), 1e-5) << "forward";

  Tensor gx1 = empty(x.shape()), gx2 = empty(x.shape()), gw1 = empty(w.shape()), gw2 = empty(w.shape());
  Tensor gb1 = empty({g.K}), gb2 = empty({g.K});
  kernels::cpu::conv2d_backward<float>(g, x.data<float>(), w.data<float>(), gy.data<float>(), gx1.data<float>(),
                                       gw1.data<float>(), gb1.data<float>());
  kernels::cpu::conv2d_backward_ref<float>(g, x.data<float>(), w.data<float>(), gy.data<float>(), gx2.data<float>(),
                                           gw2.data<float>(), gb2.data<float>());
  EXPECT_LT(max_rel_err(gx1.to_vector<float>(), gx2.to_vector<float>()), 1e-5) << "grad input";
  EXPECT_LT(max_rel_err(gw1.to_vector<float>(), gw2.to_vector<float>()), 1e-4) << "grad weight";
  EXPECT_LT(max_rel_err(gb1.to_vector<float>(), gb2.to_vector<float>()), 1e-4) << "grad bias";

  // Only the weight gradient (input gradient skipped), and only the input gradient.
  Tensor gw3 = empty(w.shape()), gx3 = empty(x.shape());
  kernels::cpu::conv2d_backward<float>(g, x.data<float>(), nullptr, gy.data<float>(), nullptr, gw3.data<float>(),
                                       nullptr);
  kernels::cpu::conv2d_backward<float>(g, nullptr, w.data<float>(), gy.data<float>(), gx3.data<float>(), nullptr,
                                       nullptr);
  EXPECT_LT(max_rel_err(gw3.to_vector<float>(), gw2.to_vector<float>()), 1e-4);
  EXPECT_LT(max_rel_err(gx3.to_vector<float>(), gx2.to_vector<float>()), 1e-5);
}

const ConvCase kConvCases[] = {
    ConvCase{4, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, true},    // CIFAR stem (width 16)
    ConvCase{3, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1, false},  // layer1
    ConvCase{4, 16, 28, 28, 32, 3, 3, 2, 1, 1, 1, false},  // layer2 first conv
    ConvCase{6, 32, 7, 7, 64, 3, 3, 1, 1, 1, 1, true},     // small map: batched chunks
    ConvCase{5, 16, 28, 28, 32, 1, 1, 2, 0, 1, 1, false},  // 1x1 s2 downsample
    ConvCase{3, 24, 9, 9, 20, 1, 1, 1, 0, 1, 1, true},     // 1x1 s1 direct GEMM
    ConvCase{7, 6, 13, 11, 10, 3, 5, 2, 2, 1, 2, true},    // ragged, groups 2
    ConvCase{3, 5, 17, 10, 7, 3, 3, 1, 2, 2, 1, true},     // ragged, dilation 2
    ConvCase{9, 8, 3, 3, 8, 3, 3, 1, 1, 1, 4, true},       // tiny map, groups 4
    ConvCase{3, 64, 28, 28, 8, 3, 3, 1, 1, 1, 1, true},    // col built in row tiles
    ConvCase{1, 256, 56, 57, 4, 3, 3, 2, 1, 1, 1, false},  // row tiles + col2im, stride 2
    ConvCase{2, 64, 27, 25, 6, 3, 3, 1, 2, 2, 2, true},    // row tiles, dilation, groups
    ConvCase{5, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, true},     // layer3 at width 16: small map, 64 channels
    ConvCase{3, 20, 4, 4, 36, 3, 3, 1, 1, 1, 1, false},    // 4x4 map, channels not a multiple of 16
    ConvCase{2, 16, 15, 15, 24, 1, 1, 2, 0, 1, 1, true},   // 1x1 s2 on an odd map
    ConvCase{3, 12, 9, 9, 12, 3, 3, 1, 1, 1, 12, true},    // depthwise
    ConvCase{2, 20, 11, 11, 30, 3, 3, 3, 1, 2, 5, true},   // stride 3, dilation 2, groups 5
};

INSTANTIATE_TEST_SUITE_P(Shapes, ConvFastVsRef, ::testing::ValuesIn(kConvCases));

// The oneDNN path (kernels/cpu/conv2d_onednn) against the reference at the same shapes, with every subset of
// gradients the backward closure asks for.
class ConvOneDnnVsRef : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvOneDnnVsRef, ForwardAndBackwardAgree) {
  if (!kernels::cpu::conv2d_onednn_available()) GTEST_SKIP() << kernels::cpu::conv2d_onednn_info();
  const ConvCase c = GetParam();
  const auto g = geom_of(c);
  manual_seed(11);
  Tensor x = randf({g.N, g.C, g.H, g.W}), w = randf({g.K, g.C / g.groups, g.R, g.S}), b = randf({g.K});
  Tensor gy = randf({g.N, g.K, g.OH, g.OW});
  const float* bp = c.bias ? b.data<float>() : nullptr;
  Tensor y1 = empty({g.N, g.K, g.OH, g.OW}), y2 = empty({g.N, g.K, g.OH, g.OW});
  kernels::cpu::conv2d_forward_onednn(g, x.data<float>(), w.data<float>(), bp, y1.data<float>());
  kernels::cpu::conv2d_forward_ref<float>(g, x.data<float>(), w.data<float>(), bp, y2.data<float>());
  EXPECT_LT(max_rel_err(y1.to_vector<float>(), y2.to_vector<float>()), 1e-5) << "forward";

  Tensor gx1 = empty(x.shape()), gx2 = empty(x.shape()), gw1 = empty(w.shape()), gw2 = empty(w.shape());
  Tensor gb1 = empty({g.K}), gb2 = empty({g.K});
  kernels::cpu::conv2d_backward_onednn(g, x.data<float>(), w.data<float>(), gy.data<float>(), gx1.data<float>(),
                                       gw1.data<float>(), gb1.data<float>());
  kernels::cpu::conv2d_backward_ref<float>(g, x.data<float>(), w.data<float>(), gy.data<float>(), gx2.data<float>(),
                                           gw2.data<float>(), gb2.data<float>());
  EXPECT_LT(max_rel_err(gx1.to_vector<float>(), gx2.to_vector<float>()), 1e-5) << "grad input";
  EXPECT_LT(max_rel_err(gw1.to_vector<float>(), gw2.to_vector<float>()), 1e-4) << "grad weight";
  EXPECT_LT(max_rel_err(gb1.to_vector<float>(), gb2.to_vector<float>()), 1e-4) << "grad bias";

  // Subsets: weight gradient only (first conv: no input gradient), weight + bias, input only, bias only.
  Tensor gw3 = empty(w.shape()), gw4 = empty(w.shape()), gb4 = empty({g.K}), gx5 = empty(x.shape());
  Tensor gb6 = empty({g.K});
  kernels::cpu::conv2d_backward_onednn(g, x.data<float>(), nullptr, gy.data<float>(), nullptr, gw3.data<float>(),
                                       nullptr);
  kernels::cpu::conv2d_backward_onednn(g, x.data<float>(), nullptr, gy.data<float>(), nullptr, gw4.data<float>(),
                                       gb4.data<float>());
  kernels::cpu::conv2d_backward_onednn(g, nullptr, w.data<float>(), gy.data<float>(), gx5.data<float>(), nullptr,
                                       nullptr);
  kernels::cpu::conv2d_backward_onednn(g, nullptr, nullptr, gy.data<float>(), nullptr, nullptr, gb6.data<float>());
  EXPECT_LT(max_rel_err(gw3.to_vector<float>(), gw2.to_vector<float>()), 1e-4) << "grad weight only";
  EXPECT_LT(max_rel_err(gw4.to_vector<float>(), gw2.to_vector<float>()), 1e-4) << "grad weight with bias";
  EXPECT_LT(max_rel_err(gb4.to_vector<float>(), gb2.to_vector<float>()), 1e-4) << "grad bias with weight";
  EXPECT_LT(max_rel_err(gx5.to_vector<float>(), gx2.to_vector<float>()), 1e-5) << "grad input only";
  EXPECT_LT(max_rel_err(gb6.to_vector<float>(), gb2.to_vector<float>()), 1e-4) << "grad bias only";
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvOneDnnVsRef, ::testing::ValuesIn(kConvCases));

// The op front-end in f32 (oneDNN when built with it) against the reference, bias and all gradients.
TEST(Conv2d, OpF32MatchesRef) {
  manual_seed(5);
  const ConvCase c{3, 6, 10, 9, 8, 3, 3, 2, 1, 1, 2, true};
  const auto g = geom_of(c);
  Tensor x = randf({g.N, g.C, g.H, g.W}), w = randf({g.K, g.C / g.groups, g.R, g.S}), b = randf({g.K});
  Tensor r = randf({g.N, g.K, g.OH, g.OW});
  for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
  Tensor y = conv2d(x, w, b, cp(2, 1, 1, 2));
  sum(mul(y, r)).backward();
  Tensor y2 = empty(y.shape()), gx = empty(x.shape()), gw = empty(w.shape()), gb = empty({g.K});
  kernels::cpu::conv2d_forward_ref<float>(g, x.data<float>(), w.data<float>(), b.data<float>(), y2.data<float>());
  kernels::cpu::conv2d_backward_ref<float>(g, x.data<float>(), w.data<float>(), r.data<float>(), gx.data<float>(),
                                           gw.data<float>(), gb.data<float>());
  EXPECT_LT(max_rel_err(y.to_vector<float>(), y2.to_vector<float>()), 1e-5);
  EXPECT_LT(max_rel_err(x.grad().to_vector<float>(), gx.to_vector<float>()), 1e-5);
  EXPECT_LT(max_rel_err(w.grad().to_vector<float>(), gw.to_vector<float>()), 1e-4);
  EXPECT_LT(max_rel_err(b.grad().to_vector<float>(), gb.to_vector<float>()), 1e-4);
}

TEST(Conv2d, OpMatchesRefAndSkipsUnneededGrads) {
  manual_seed(3);
  Tensor x = randf({2, 3, 8, 8}), w = randf({4, 3, 3, 3});
  w.set_requires_grad(true);
  Tensor y = conv2d(x, w, Tensor(), cp(1, 1));
  EXPECT_EQ(y.shape(), (Shape{2, 4, 8, 8}));
  sum(y).backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(w.grad().shape(), w.shape());
}


TEST(Conv2d, ErrorsNameOpAndShapes) {
  Tensor x = zeros({2, 3, 8, 8}), w = zeros({4, 3, 3, 3});
  EXPECT_THAT(error_of([&] { conv2d(zeros({3, 8, 8}), w); }), AllOf(HasSubstr("conv2d"), HasSubstr("[3, 8, 8]")));
  EXPECT_THAT(error_of([&] {
                conv2d(x, zeros({4, 2, 3, 3}));
              }),
              AllOf(HasSubstr("conv2d"), HasSubstr("[4, 2, 3, 3]"), HasSubstr("[2, 3, 8, 8]")));
  EXPECT_THAT(error_of([&] {
                conv2d(x, zeros({4, 1, 3, 3}), Tensor(), cp(1, 1, 1, 2));
              }),
              AllOf(HasSubstr("conv2d"), HasSubstr("groups=2"), HasSubstr("[2, 3, 8, 8]")));
  EXPECT_THAT(error_of([&] { conv2d(x, w, zeros({5})); }),
              AllOf(HasSubstr("conv2d"), HasSubstr("bias"), HasSubstr("[5]")));
  EXPECT_THAT(error_of([&] {
                conv2d(zeros({1, 3, 2, 2}), w);
              }),
              AllOf(HasSubstr("conv2d"), HasSubstr("[1, 3, 2, 2]"), HasSubstr("larger")));
  EXPECT_THAT(error_of([&] { conv2d(x, w, Tensor(), cp(0, 1)); }), AllOf(HasSubstr("conv2d"), HasSubstr("stride")));
  EXPECT_THAT(error_of([&] {
                conv2d(x, zeros({4, 3, 3, 3}, DType::f64));
              }),
              AllOf(HasSubstr("conv2d"), HasSubstr("dtype")));
}

}  // namespace
}  // namespace siam::test

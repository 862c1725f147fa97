// kernels/common/fastmath.h: exp_f32, sigmoid_f32 and tanh_f32 against libm in double, in ulps of the float
// result. The kernels' copies (compiled with -march=native, so with FMA contraction) are swept through
// kernels::cpu::unary over ~50M float bit patterns spread over the whole range; the inline functions compiled
// here (tests are built without -march=native: no FMA) over a sparser sweep. An exhaustive sweep over all
// 2^32 patterns (about a minute on two cores) is DISABLED_; run it with --gtest_also_run_disabled_tests.
// Measured exhaustively: exp 1.02 ulp (FMA) / 0.99 ulp (no FMA).
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/common/fastmath.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/reduce.h"

namespace siam {
namespace {

using kernels::cpu::UnaryOp;

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Error of y in units of the last place of the float nearest the exact value e (subnormal ulp below 2^-126).
double ulp_error(float y, double e) {
  const double ae = std::fabs(e);
  double ulp = std::ldexp(1.0, -149);
  if (ae >= std::ldexp(1.0, -126)) {
    int ex = 0;
    std::frexp(ae, &ex);  // ae = m 2^ex, m in [0.5, 1)
    ulp = std::ldexp(1.0, ex - 24);
  }
  return std::fabs(static_cast<double>(y) - e) / ulp;
}

struct SweepResult {
  double max_ulp = 0;
  float worst_x = 0;
  int64_t wrong_special = 0;  // NaN / inf / overflow mismatches
  int64_t checked = 0;
};

// Checks y = f(x) against `exact` (double): NaN in -> NaN out; where the exact value is beyond FLT_MAX the
// result must be the correctly rounded float (inf or FLT_MAX); otherwise the ulp error is recorded.
template <class Exact>
void score(const std::vector<float>& x, const std::vector<float>& y, Exact exact, SweepResult& r) {
  for (size_t i = 0; i < x.size(); ++i) {
    ++r.checked;
    if (std::isnan(x[i])) {
      r.wrong_special += !std::isnan(y[i]);
      continue;
    }
    const double e = exact(static_cast<double>(x[i]));
    if (std::isnan(y[i])) {
      ++r.wrong_special;
      continue;
    }
    if (std::fabs(e) > FLT_MAX || std::isinf(y[i])) {
      r.wrong_special += static_cast<float>(e) != y[i];
      continue;
    }
    const double u = ulp_error(y[i], e);
    if (u > r.max_ulp) {
      r.max_ulp = u;
      r.worst_x = x[i];
    }
  }
}

// Sweeps bit patterns start, start + stride, ... (wrapping at 2^32) through `f`, a batch at a time.
template <class F, class Exact>
SweepResult sweep(uint64_t count, uint64_t stride, F f, Exact exact) {
  constexpr uint64_t kBatch = 1 << 20;
  SweepResult r;
  std::vector<float> x, y;
  for (uint64_t done = 0; done < count; done += kBatch) {
    const uint64_t n = std::min(kBatch, count - done);
    x.resize(n);
    y.resize(n);
    for (uint64_t i = 0; i < n; ++i) x[i] = from_bits(static_cast<uint32_t>((done + i) * stride + 12345));
    f(x, y);
    score(x, y, exact, r);
  }
  return r;
}

auto kernel_unary(UnaryOp op) {
  return [op](const std::vector<float>& x, std::vector<float>& y) {
    kernels::cpu::unary<float>(op, static_cast<int64_t>(x.size()), x.data(), y.data());
  };
}
double exact_exp(double x) { return std::exp(x); }
double exact_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double exact_tanh(double x) { return std::tanh(x); }

TEST(FastMath, ExpKernelDenseSweep) {
  // ~50M patterns: stride 85 covers every exponent densely (2^23 patterns per binade).
  const uint64_t stride = 85, count = (uint64_t(1) << 32) / stride;
  SweepResult r = sweep(count, stride, kernel_unary(UnaryOp::exp), exact_exp);
  EXPECT_EQ(r.wrong_special, 0);
  EXPECT_LE(r.max_ulp, 1.5) << "worst x = " << r.worst_x;
  std::printf("sweep of %lld values: exp max %.3f ulp at x = %a\n", static_cast<long long>(count), r.max_ulp,
              r.worst_x);
}

TEST(FastMath, ExpInlineSweep) {
  const uint64_t stride = 1021, count = (uint64_t(1) << 32) / stride;
  auto f = [](const std::vector<float>& x, std::vector<float>& y) {
    for (size_t i = 0; i < x.size(); ++i) y[i] = fastmath::exp_f32(x[i]);
  };
  SweepResult r = sweep(count, stride, f, exact_exp);
  EXPECT_EQ(r.wrong_special, 0);
  EXPECT_LE(r.max_ulp, 1.5) << "worst x = " << r.worst_x;
}

TEST(FastMath, DISABLED_ExpKernelExhaustive) {
  SweepResult r = sweep(uint64_t(1) << 32, 1, kernel_unary(UnaryOp::exp), exact_exp);
  EXPECT_EQ(r.checked, int64_t(1) << 32);
  EXPECT_EQ(r.wrong_special, 0);
  EXPECT_LE(r.max_ulp, 1.5) << "worst x = " << r.worst_x;
  std::printf("exp_f32 exhaustive: max %.4f ulp at x = %a\n", r.max_ulp, r.worst_x);
}

TEST(FastMath, ExpEdgeCases) {
  const float inf = std::numeric_limits<float>::infinity();
  const float max_finite_x = from_bits(0x42b17217);  // 88.7228317: largest x with exp(x) <= FLT_MAX
  std::vector<float> x = {0.0f,
                          -0.0f,
                          inf,
                          -inf,
                          std::numeric_limits<float>::quiet_NaN(),
                          -std::numeric_limits<float>::quiet_NaN(),
                          FLT_MAX,
                          -FLT_MAX,
                          max_finite_x,
                          std::nextafter(max_finite_x, inf),
                          89.0f,
                          1000.0f,
                          -87.3365478f,  // exp ~ FLT_MIN: the normal/subnormal boundary
                          -87.5f,
                          -100.0f,
                          -103.27893f,  // exp ~ 2^-149: the smallest subnormal
                          -103.9720840f,
                          -103.9720764f,
                          -103.98f,
                          -104.0f,
                          -1000.0f,
                          1e-30f,
                          -1e-30f,
                          FLT_MIN,
                          from_bits(1),  // smallest subnormal input
                          1.0f,
                          -1.0f,
                          0.5f * 0.693147181f,
                          -0.5f * 0.693147181f};
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<float> y(x.size());
    if (pass == 0) {
      kernels::cpu::unary<float>(UnaryOp::exp, static_cast<int64_t>(x.size()), x.data(), y.data());
    } else {
      for (size_t i = 0; i < x.size(); ++i) y[i] = fastmath::exp_f32(x[i]);
    }
    for (size_t i = 0; i < x.size(); ++i) {
      SCOPED_TRACE(testing::Message() << (pass == 0 ? "kernel" : "inline") << " x = " << x[i]);
      if (std::isnan(x[i])) {
        EXPECT_TRUE(std::isnan(y[i]));
        continue;
      }
      const double e = std::exp(static_cast<double>(x[i]));
      if (e > FLT_MAX) {
        EXPECT_EQ(y[i], inf);
      } else if (e < std::ldexp(1.0, -150)) {  // below half the smallest subnormal: rounds to +0
        EXPECT_EQ(y[i], 0.0f);
        EXPECT_FALSE(std::signbit(y[i]));
      } else {
        EXPECT_LE(ulp_error(y[i], e), 1.5) << "got " << y[i] << ", want " << e;
        if (e > std::ldexp(1.0, -148)) {
          EXPECT_GT(y[i], 0.0f);
        }
      }
    }
  }
  EXPECT_EQ(fastmath::exp_f32(0.0f), 1.0f);
  EXPECT_EQ(fastmath::exp_f32(inf), inf);
  EXPECT_EQ(fastmath::exp_f32(-inf), 0.0f);
  EXPECT_EQ(fastmath::exp_f32(max_finite_x) < inf, true);
}

// sigmoid and tanh: absolute error near zero crossings is what matters for tanh (its values there are tiny,
// and the polynomial keeps them relatively accurate); both are checked in ulps over a sweep.
TEST(FastMath, SigmoidAndTanhKernelSweep) {
  const uint64_t stride = 509, count = (uint64_t(1) << 32) / stride;
  SweepResult s = sweep(count, stride, kernel_unary(UnaryOp::sigmoid), exact_sigmoid);
  EXPECT_EQ(s.wrong_special, 0);
  EXPECT_LE(s.max_ulp, 3.0) << "sigmoid worst x = " << s.worst_x;
  SweepResult t = sweep(count, stride, kernel_unary(UnaryOp::tanh), exact_tanh);
  EXPECT_EQ(t.wrong_special, 0);
  EXPECT_LE(t.max_ulp, 3.0) << "tanh worst x = " << t.worst_x;
  std::printf("sweep of %lld values: sigmoid max %.3f ulp, tanh max %.3f ulp\n", static_cast<long long>(count),
              s.max_ulp, t.max_ulp);

  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {inf, -inf, 0.0f, -0.0f, 100.0f, -100.0f, 1e-20f, -1e-20f}, y(x.size());
  kernels::cpu::unary<float>(UnaryOp::tanh, static_cast<int64_t>(x.size()), x.data(), y.data());
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -1.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_TRUE(std::signbit(y[3]));
  EXPECT_EQ(y[4], 1.0f);
  EXPECT_EQ(y[5], -1.0f);
  EXPECT_EQ(y[6], 1e-20f);
  EXPECT_EQ(y[7], -1e-20f);
  kernels::cpu::unary<float>(UnaryOp::sigmoid, static_cast<int64_t>(x.size()), x.data(), y.data());
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 0.5f);
  EXPECT_EQ(y[4], 1.0f);
  EXPECT_GT(y[5], 0.0f);  // e^-100 ~ 3.7e-44: a subnormal, not flushed
}

// The f32 softmax family (fast exp, vectorized) against the f64 kernels (libm).
TEST(FastMath, SoftmaxRowsMatchDouble) {
  const int64_t rows = 37, cols = 1003;
  std::vector<float> xf(rows * cols);
  std::vector<double> xd(rows * cols);
  uint32_t state = 12345;
  for (int64_t i = 0; i < rows * cols; ++i) {
    state = state * 1664525u + 1013904223u;
    xf[i] = (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 40.0f;  // [-20, 20)
    xd[i] = xf[i];
  }
  for (bool log : {false, true}) {
    std::vector<float> yf(rows * cols);
    std::vector<double> yd(rows * cols);
    kernels::cpu::softmax_rows<float>(rows, cols, xf.data(), yf.data(), log);
    kernels::cpu::softmax_rows<double>(rows, cols, xd.data(), yd.data(), log);
    double max_rel = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
      const double err = std::fabs(yf[i] - yd[i]);
      max_rel = std::max(max_rel, log ? err / std::max(1.0, std::fabs(yd[i])) : err / std::max(1e-30, yd[i]));
    }
    // x - max is rounded in f32 before exp: up to 40 * 2^-24 = 2.4e-6 relative on the smallest probabilities
    // (the same for libm's expf), so the bound is set above that.
    EXPECT_LT(max_rel, 4e-6) << (log ? "log_softmax" : "softmax");
  }
  std::vector<float> lf(rows);
  std::vector<double> ld(rows);
  kernels::cpu::logsumexp_rows<float>(rows, cols, xf.data(), lf.data());
  kernels::cpu::logsumexp_rows<double>(rows, cols, xd.data(), ld.data());
  for (int64_t r = 0; r < rows; ++r) EXPECT_NEAR(lf[r], ld[r], 2e-6 * std::fabs(ld[r]));
}

}  // namespace
}  // namespace siam

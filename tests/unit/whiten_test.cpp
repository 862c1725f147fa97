// Batch whitening (W-MSE): the fused op against the unfused compositions of primitive engine ops (values and
// gradients, f64 and f32, ragged sizes): the Cholesky form against a scalar-by-scalar Cholesky and forward
// substitution built from select/sub/mul/div/sqrt/stack, the Newton-Schulz form against matmul iterations.
// Also: the fast kernels against the plain reference, the whitened covariance, and the error messages.
// (Finite-difference checks in f64 at D = 2, 3, 5: tests/unit/samples_losses_test.cpp.)
#include "engine/ops/whiten.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "kernels/cpu/whiten.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

namespace kc = kernels::cpu;

Tensor centered_cov(const Tensor& x, double eps, Tensor* xc_out) {
  const int64_t m = x.size(0), d = x.size(1);
  Tensor xc = sub(x, mean(x, {0}, true));  // (M, D)
  if (xc_out) *xc_out = xc;
  return add(div(matmul(xc.t(), xc), double(m - 1)), mul(eye(d, x.options()), eps));  // (D, D)
}

// Cholesky, one scalar at a time, then Y = Xc L^{-T} by forward substitution over columns.
Tensor whiten_cholesky_unfused(const Tensor& x, double eps) {
  const int64_t d = x.size(1);
  Tensor xc;
  Tensor sig = centered_cov(x, eps, &xc);
  std::vector<std::vector<Tensor>> l(d, std::vector<Tensor>(d));
  auto at = [&](int64_t i, int64_t j) { return sig.select(0, i).select(0, j); };
  for (int64_t j = 0; j < d; ++j) {
    Tensor s = at(j, j);
    for (int64_t k = 0; k < j; ++k) s = sub(s, square(l[j][k]));
    l[j][j] = sqrt(s);
    for (int64_t i = j + 1; i < d; ++i) {
      Tensor t = at(i, j);
      for (int64_t k = 0; k < j; ++k) t = sub(t, mul(l[i][k], l[j][k]));
      l[i][j] = div(t, l[j][j]);
    }
  }
  std::vector<Tensor> ys;  // columns of Y, (M) each
  for (int64_t j = 0; j < d; ++j) {
    Tensor y = xc.select(1, j);
    for (int64_t k = 0; k < j; ++k) y = sub(y, mul(l[j][k], ys[k]));
    ys.push_back(div(y, l[j][j]));
  }
  return stack(ys, 1);
}

Tensor whiten_ns_unfused(const Tensor& x, double eps, int iters) {
  const int64_t d = x.size(1);
  Tensor xc;
  Tensor sig = centered_cov(x, eps, &xc);
  Tensor e = eye(d, x.options());
  Tensor tr = sum(mul(sig, e));  // []
  Tensor sn = div(sig, tr);
  Tensor p = sub(mul(e, 1.5), mul(sn, 0.5));
  for (int k = 1; k < iters; ++k) p = sub(mul(p, 1.5), mul(matmul(matmul(matmul(p, p), p), sn), 0.5));
  return matmul(xc, div(p, sqrt(tr)).t());
}

struct Case {
  int64_t m, d;
  double eps;
  int iters;  // 0: Cholesky
};

std::string label(const Case& c) {
  return "M=" + std::to_string(c.m) + " D=" + std::to_string(c.d) + " eps=" + std::to_string(c.eps) +
         (c.iters ? " newton_schulz iters=" + std::to_string(c.iters) : " cholesky");
}

// Fused vs unfused: Y, and dx for L = sum(w * Y) with a random w.
void compare_with_composition(const Case& c, DType dt, double rtol_y, double rtol_g) {
  SCOPED_TRACE(label(c) + (dt == DType::f32 ? " f32" : " f64"));
  Tensor base = randn({c.m, c.d}, dt);
  // features of different scales and some correlation, as embeddings have
  std::vector<double> scale(c.d);
  for (int64_t j = 0; j < c.d; ++j) scale[j] = 0.5 + 0.25 * double(j);
  base = add(mul(base, from_vector(scale, {c.d}, dt)), mul(base.narrow(1, 0, 1), 0.5));
  Tensor a = base.clone().set_requires_grad(true), b = base.clone().set_requires_grad(true);
  Tensor w = randn({c.m, c.d}, dt);
  Tensor yf = c.iters ? whiten(a, c.eps, WhitenAlgo::newton_schulz, c.iters) : whiten(a, c.eps);
  Tensor yu = c.iters ? whiten_ns_unfused(b, c.eps, c.iters) : whiten_cholesky_unfused(b, c.eps);
  expect_close(yf, yu, rtol_y, 0, "y");
  sum(mul(yf, w)).backward();
  sum(mul(yu, w)).backward();
  expect_close(a.grad(), b.grad(), rtol_g, 0, "dx");
}

TEST(WhitenCholesky, MatchesCompositionF64) {
  manual_seed(21);
  for (Case c : {Case{3, 2, 0.0, 0}, Case{7, 3, 0.0, 0}, Case{13, 5, 0.0, 0}, Case{41, 8, 0.0, 0},
                 Case{33, 16, 0.01, 0}, Case{6, 9, 0.3, 0}})
    compare_with_composition(c, DType::f64, 1e-10, 1e-9);
}

TEST(WhitenCholesky, MatchesCompositionF32) {
  manual_seed(22);
  for (Case c : {Case{7, 3, 0.0, 0}, Case{13, 5, 0.0, 0}, Case{41, 8, 0.0, 0}, Case{100, 16, 0.01, 0}})
    compare_with_composition(c, DType::f32, 2e-4, 2e-3);
}

TEST(WhitenNewtonSchulz, MatchesCompositionF64) {
  manual_seed(23);
  for (Case c :
       {Case{3, 2, 0.0, 1}, Case{7, 3, 0.0, 5}, Case{40, 16, 0.0, 5}, Case{101, 33, 0.01, 7}, Case{9, 12, 0.2, 4}})
    compare_with_composition(c, DType::f64, 1e-10, 1e-9);
}

TEST(WhitenNewtonSchulz, MatchesCompositionF32) {
  manual_seed(24);
  for (Case c : {Case{7, 3, 0.0, 5}, Case{40, 16, 0.0, 5}, Case{101, 33, 0.01, 7}})
    compare_with_composition(c, DType::f32, 2e-4, 2e-3);
}

// Y^T Y / (M - 1) = I: exactly for Cholesky (with Y's first column Xc_0 / sd_0), approximately for
// Newton-Schulz once it has converged (many iterations on a well-conditioned covariance).
TEST(Whiten, OutputHasIdentityCovariance) {
  manual_seed(25);
  const int64_t m = 200, d = 8;
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor x = add(randn({m, d}, dt), 3.0);
    const double tol = dt == DType::f64 ? 1e-10 : 1e-4;
    for (int iters : {0, 40}) {
      SCOPED_TRACE(std::string(dt == DType::f64 ? "f64" : "f32") + (iters ? " newton_schulz" : " cholesky"));
      Tensor y = iters ? whiten(x, 0.0, WhitenAlgo::newton_schulz, iters) : whiten(x);
      expect_close(div(matmul(y.t(), y), double(m - 1)), eye(d, dt), 0, iters ? 10 * tol : tol, "cov(y)");
      expect_close(mean(y, {0}), zeros({d}, dt), 0, tol, "mean(y)");
    }
    Tensor xc0 = sub(x.select(1, 0), mean(x.select(1, 0)));
    expect_close(whiten(x).select(1, 0), div(xc0, sqrt(var(x.select(1, 0), {0}, 1))), tol, tol, "y[:, 0]");
  }
}

TEST(WhitenKernel, FastPathMatchesReference) {
  manual_seed(26);
  for (int iters : {0, 5}) {
    for (auto [m, d] : {std::pair<int64_t, int64_t>{300, 70}, {65, 64}, {129, 3}}) {
      SCOPED_TRACE("M=" + std::to_string(m) + " D=" + std::to_string(d) + " iters=" + std::to_string(iters));
      Tensor x = randn({m, d}, DType::f64), g = randn({m, d}, DType::f64);
      std::vector<double> yr(m * d), dxr(m * d), y(m * d), dx(m * d), xc(m * d), w(d * d), p(5 * d * d);
      auto piv = kc::whiten_ref<double>(m, d, x.data<double>(), 0.01, iters > 0, iters, yr.data(), g.data<double>(),
                                        dxr.data());
      ASSERT_LT(piv.index, 0);
      if (iters) {
        double tr = 0;
        ASSERT_LT(kc::whiten_ns_forward<double>(m, d, x.data<double>(), 0.01, iters, xc.data(), w.data(), p.data(), &tr,
                                                y.data())
                      .index,
                  0);
        kc::whiten_ns_backward<double>(m, d, iters, g.data<double>(), xc.data(), w.data(), p.data(), tr, dx.data());
      } else {
        ASSERT_LT(
            kc::whiten_cholesky_forward<double>(m, d, x.data<double>(), 0.01, xc.data(), w.data(), y.data()).index, 0);
        kc::whiten_cholesky_backward<double>(m, d, g.data<double>(), xc.data(), w.data(), dx.data());
      }
      expect_close(from_vector(y, {m, d}, DType::f64), from_vector(yr, {m, d}, DType::f64), 1e-10, 0, "y");
      expect_close(from_vector(dx, {m, d}, DType::f64), from_vector(dxr, {m, d}, DType::f64), 1e-9, 0, "dx");
    }
  }
}

TEST(Whiten, ShrinkageAllowsFewerSamplesThanFeatures) {
  manual_seed(27);
  Tensor x = randn({4, 6}).set_requires_grad(true);
  Tensor y = whiten(x, 0.5);
  sum(square(y)).backward();
  for (float v : y.to_vector<float>()) EXPECT_TRUE(std::isfinite(v));
  for (float v : x.grad().to_vector<float>()) EXPECT_TRUE(std::isfinite(v));
}

TEST(WhitenErrors, NotPositiveDefiniteNamesTheOpSizesAndPivot) {
  manual_seed(28);
  for (DType dt : {DType::f32, DType::f64}) {
    for (auto algo : {WhitenAlgo::cholesky, WhitenAlgo::newton_schulz}) {
      // feature 1 constant: pivot 1 is 0
      Tensor x = randn({10, 3}, dt);
      x.select(1, 1).fill_(2.0);
      std::string e = error_of([&] { whiten(x, 0.0, algo); });
      EXPECT_NE(e.find("whiten: the covariance of x [10, 3] (D = 3 features, M = 10 samples"), std::string::npos) << e;
      EXPECT_NE(e.find("not positive definite: Cholesky pivot 1 of 3 is 0"), std::string::npos) << e;
      // feature 2 a copy of feature 0: pivot 2 vanishes (up to rounding)
      Tensor y = randn({12, 3}, dt);
      y.select(1, 2).copy_(y.select(1, 0));
      e = error_of([&] { whiten(y, 0.0, algo); });
      EXPECT_NE(e.find("Cholesky pivot 2 of 3"), std::string::npos) << e;
    }
  }
  std::string e = error_of([] { whiten(randn({5, 5})); });
  EXPECT_NE(e.find("whiten: without shrinkage (eps = 0)"), std::string::npos) << e;
  EXPECT_NE(e.find("got x [5, 5] (M = 5, D = 5)"), std::string::npos) << e;
  EXPECT_NE(error_of([] { whiten(randn({5})); }).find("whiten: x must be (M, D)"), std::string::npos);
  EXPECT_NE(error_of([] { whiten(randn({1, 3}), 0.1); }).find("at least 2 samples"), std::string::npos);
  EXPECT_NE(error_of([] { whiten(randn({9, 3}), -1.0); }).find("whiten: eps"), std::string::npos);
  EXPECT_NE(error_of([] {
              whiten(randn({9, 3}), 0.0, WhitenAlgo::newton_schulz, 0);
            }).find("ns_iters must be >= 1"),
            std::string::npos);
}

}  // namespace
}  // namespace siam::test

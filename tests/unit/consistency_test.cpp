// Normalized MSE (BYOL / SimSiam) and the VICReg terms: the fused ops against the unfused compositions of
// primitive engine ops (values and gradients, f64 and f32, ragged sizes, both sides of VICReg's N < D Gram
// switch), the fast kernels against the plain references, and the error messages.
// (Finite-difference checks in f64: tests/unit/samples_losses_test.cpp.)
#include "engine/ops/consistency.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "kernels/cpu/consistency.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

namespace kc = kernels::cpu;

Tensor leaf_like(const Tensor& t) { return t.detach().clone().set_requires_grad(true); }

// ---- unfused compositions ----

Tensor nmse_unfused(const Tensor& p, const Tensor& z) {
  return mean(rsub(2.0, mul(sum(mul(normalize(p, 1), normalize(z, 1)), {1}), 2.0)));
}

VicregTerms vicreg_unfused(const Tensor& z1, const Tensor& z2, double eps) {
  const int64_t n = z1.size(0), d = z1.size(1);
  auto hinge = [eps](const Tensor& z) { return mean(relu(rsub(1.0, sqrt(add(var(z, {0}, 1), eps))))); };
  auto off = [n, d](const Tensor& z) {
    Tensor zc = sub(z, mean(z, {0}, true));
    Tensor c = div(matmul(zc.t(), zc), double(n - 1));  // (D, D)
    return sum(square(mul(c, rsub(1.0, eye(d, z.options())))));
  };
  return {mse_loss(z1, z2), div(add(hinge(z1), hinge(z2)), 2.0), div(add(off(z1), off(z2)), double(d))};
}

// ---- normalized MSE ----

TEST(NormalizedMse, MatchesComposition) {
  manual_seed(41);
  for (DType dt : {DType::f64, DType::f32})
    for (auto [n, d] : {std::pair<int64_t, int64_t>{1, 1}, {3, 4}, {37, 65}, {300, 17}, {64, 256}}) {
      SCOPED_TRACE("N=" + std::to_string(n) + " D=" + std::to_string(d) + (dt == DType::f32 ? " f32" : " f64"));
      const double tol = dt == DType::f32 ? 2e-5 : 1e-12;
      Tensor p = randn({n, d}, dt), z = add(mul(p, 0.8), randn({n, d}, dt));  // correlated, as BYOL's are
      Tensor p1 = leaf_like(p), z1 = leaf_like(z), p2 = leaf_like(p), z2 = leaf_like(z);
      Tensor lf = normalized_mse(p1, z1), lu = nmse_unfused(p2, z2);
      EXPECT_EQ(lf.shape(), Shape{});
      EXPECT_NEAR(lf.item(), lu.item(), tol * 4);
      lf.backward();
      lu.backward();
      // (D = 1: cos = +-1 and the gradient is 0 up to rounding, hence the absolute tolerance)
      expect_close(p1.grad(), p2.grad(), 10 * tol, 10 * tol, "dp");
      expect_close(z1.grad(), z2.grad(), 10 * tol, 10 * tol, "dz");
    }
}

TEST(NormalizedMse, NonContiguousInputs) {
  manual_seed(42);
  Tensor bp = randn({5, 7}), bz = randn({5, 7});
  Tensor a = leaf_like(bp), b = leaf_like(bp);  // (5, 7) leaves
  ASSERT_FALSE(a.t().is_contiguous());
  Tensor lf = normalized_mse(a.t(), bz.t());  // (7, 5) transposed views
  Tensor lu = nmse_unfused(b.t().contiguous(), bz.t().contiguous());
  EXPECT_NEAR(lf.item(), lu.item(), 1e-6);
  lf.backward();
  lu.backward();
  expect_close(a.grad(), b.grad(), 1e-5, 0, "dp");
}

TEST(NormalizedMse, StopGradientTargetGetsNoGradient) {
  Tensor p = randn({6, 4}).set_requires_grad(true), z = randn({6, 4}).set_requires_grad(true);
  normalized_mse(p, z.detach()).backward();
  EXPECT_TRUE(p.grad().defined());
  EXPECT_FALSE(z.grad().defined());
}

TEST(NormalizedMse, ZeroRowStaysFinite) {
  Tensor p = randn({3, 4});
  p.select(0, 1).zero_();
  p.set_requires_grad(true);
  Tensor z = randn({3, 4});
  Tensor l = normalized_mse(p, z);
  l.backward();
  EXPECT_TRUE(std::isfinite(l.item()));
  for (float v : p.grad().to_vector<float>()) EXPECT_TRUE(std::isfinite(v));
}

TEST(NormalizedMse, SameResultOnAnyThreadCount) {
  manual_seed(47);
  Tensor p = randn({500, 96}).set_requires_grad(true), z = randn({500, 96});  // above the parallel threshold
  auto run = [&](int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    p.set_grad(Tensor());
    Tensor l = normalized_mse(p, z);
    l.backward();
    omp_set_num_threads(prev);
    return std::make_pair(l.item(), p.grad().to_vector<float>());
  };
  auto r1 = run(1), r2 = run(2);
  EXPECT_EQ(r1.first, r2.first);
  EXPECT_EQ(r1.second, r2.second);
}

TEST(NormalizedMseKernel, FastPathMatchesReference) {
  manual_seed(43);
  const int64_t n = 301, d = 129;
  Tensor p = randn({n, d}, DType::f64), z = randn({n, d}, DType::f64);
  std::vector<double> rp(n * d), rz(n * d), fp(n * d), fz(n * d), st(3 * n);
  const double lref = kc::nmse_ref<double>(n, d, p.data<double>(), z.data<double>(), rp.data(), rz.data());
  const double l = kc::nmse_forward<double>(n, d, p.data<double>(), z.data<double>(), st.data());
  kc::nmse_backward<double>(n, d, 1.0, p.data<double>(), z.data<double>(), st.data(), fp.data(), fz.data());
  EXPECT_NEAR(l, lref, 1e-13);
  for (int64_t i = 0; i < n * d; ++i) {
    ASSERT_NEAR(fp[i], rp[i], 1e-15) << i;
    ASSERT_NEAR(fz[i], rz[i], 1e-15) << i;
  }
}

// ---- VICReg ----

// Features of alternating scale (std 0.5 and 2), so the variance hinge is active on half of them.
Tensor vicreg_input(int64_t n, int64_t d, DType dt) {
  std::vector<double> scale(d);
  for (int64_t j = 0; j < d; ++j) scale[j] = j % 2 ? 2.0 : 0.5;
  return add(mul(randn({n, d}, dt), from_vector(scale, {d}, dt)), 1.0);
}

TEST(VicregTerms, MatchesComposition) {
  manual_seed(44);
  for (DType dt : {DType::f64, DType::f32})
    // N < D takes the Gram form, N >= D the D x D covariance
    for (auto [n, d] : {std::pair<int64_t, int64_t>{2, 1}, {5, 3}, {3, 6}, {37, 65}, {130, 33}, {64, 200}}) {
      SCOPED_TRACE("N=" + std::to_string(n) + " D=" + std::to_string(d) + (dt == DType::f32 ? " f32" : " f64"));
      const double tol = dt == DType::f32 ? 1e-4 : 1e-10;
      Tensor z1 = vicreg_input(n, d, dt), z2 = add(mul(z1, 0.7), vicreg_input(n, d, dt));
      // each term on its own, then the default weighting 25, 25, 1
      for (int which = 0; which < 4; ++which) {
        SCOPED_TRACE("term " + std::to_string(which));
        Tensor a1 = leaf_like(z1), a2 = leaf_like(z2), b1 = leaf_like(z1), b2 = leaf_like(z2);
        VicregTerms f = vicreg_terms(a1, a2, 1e-4), u = vicreg_unfused(b1, b2, 1e-4);
        const Tensor fs[3] = {f.invariance, f.variance, f.covariance}, us[3] = {u.invariance, u.variance, u.covariance};
        for (int t = 0; t < 3; ++t) {
          EXPECT_EQ(fs[t].shape(), Shape{});
          EXPECT_NEAR(fs[t].item(), us[t].item(), tol * (std::abs(us[t].item()) + 1e-3)) << "value of term " << t;
        }
        auto pick = [which](const Tensor* ts) {
          return which < 3 ? ts[which] : add(add(mul(ts[0], 25.0), mul(ts[1], 25.0)), ts[2]);
        };
        pick(fs).backward();
        pick(us).backward();
        expect_close(a1.grad(), b1.grad(), 10 * tol, 1e-12, "dz1");
        expect_close(a2.grad(), b2.grad(), 10 * tol, 1e-12, "dz2");
      }
    }
}

TEST(VicregTerms, DetachedBranchGetsNoGradient) {
  manual_seed(45);
  Tensor z1 = randn({8, 12}).set_requires_grad(true), z2 = randn({8, 12}).set_requires_grad(true);
  VicregTerms t = vicreg_terms(z1, z2.detach());
  add(add(t.invariance, t.variance), t.covariance).backward();
  EXPECT_TRUE(z1.grad().defined());
  EXPECT_FALSE(z2.grad().defined());
}

TEST(VicregKernel, FastPathMatchesReference) {
  manual_seed(46);
  const double grad[3] = {25.0, 25.0, 1.0};
  for (auto [n, d] : {std::pair<int64_t, int64_t>{40, 90}, {90, 40}, {17, 17}}) {
    SCOPED_TRACE("N=" + std::to_string(n) + " D=" + std::to_string(d));
    Tensor z1 = vicreg_input(n, d, DType::f64), z2 = vicreg_input(n, d, DType::f64);
    const int64_t g = kc::vicreg_gram_dim(n, d);
    std::vector<double> r1(n * d), r2(n * d), f1(n * d), f2(n * d), c1(n * d), c2(n * d), st(4 * d), g1(g * g),
        g2(g * g);
    auto ref = kc::vicreg_ref<double>(n, d, z1.data<double>(), z2.data<double>(), 1e-4, grad, r1.data(), r2.data());
    double* s = st.data();
    auto v = kc::vicreg_forward<double>(n, d, z1.data<double>(), z2.data<double>(), 1e-4, c1.data(), c2.data(), s,
                                        s + d, s + 2 * d, s + 3 * d, g1.data(), g2.data());
    kc::vicreg_backward<double>(n, d, 1e-4, grad, c1.data(), c2.data(), s, s + d, s + 2 * d, s + 3 * d, g1.data(),
                                g2.data(), f1.data(), f2.data());
    EXPECT_NEAR(v.invariance, ref.invariance, 1e-12 * ref.invariance);
    EXPECT_NEAR(v.variance, ref.variance, 1e-12);
    EXPECT_NEAR(v.covariance, ref.covariance, 1e-10 * ref.covariance);
    expect_close(from_vector(f1, {n, d}, DType::f64), from_vector(r1, {n, d}, DType::f64), 1e-10, 0, "dz1");
    expect_close(from_vector(f2, {n, d}, DType::f64), from_vector(r2, {n, d}, DType::f64), 1e-10, 0, "dz2");
  }
}

// ---- errors ----

TEST(ConsistencyErrors, NameTheOpAndShapes) {
  Tensor a = randn({4, 8}), b = randn({5, 8});
  std::string e = error_of([&] { normalized_mse(a, b); });
  EXPECT_NE(e.find("normalized_mse: p and z must have the same shape, got p [4, 8] and z [5, 8]"), std::string::npos)
      << e;
  EXPECT_NE(error_of([&] { normalized_mse(a, a.to(DType::f64)); }).find("normalized_mse: dtype mismatch"),
            std::string::npos);
  EXPECT_NE(error_of([&] { normalized_mse(randn({8}), randn({8})); }).find("normalized_mse: p must be (N, D)"),
            std::string::npos);
  e = error_of([&] { vicreg_terms(a, b); });
  EXPECT_NE(e.find("vicreg_terms: z1 and z2 must have the same shape, got z1 [4, 8] and z2 [5, 8]"), std::string::npos)
      << e;
  e = error_of([&] { vicreg_terms(randn({1, 3}), randn({1, 3})); });
  EXPECT_NE(e.find("vicreg_terms: needs at least 2 samples and 1 feature, got z1 [1, 3]"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { vicreg_terms(a, a, -1.0); }).find("vicreg_terms: eps"), std::string::npos);
}

}  // namespace
}  // namespace siam::test

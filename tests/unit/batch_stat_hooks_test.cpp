// The distributed forms of barlow_twins_loss and vicreg_terms (engine/ops/batch_stat_hooks.h) in one process:
// with an identity all-reduce and the local batch as the global one they are the fused ops, in value and in
// gradient; each hook call is the documented statistic; bad hooks are clear errors. Two ranks against one
// process: tests/dist/gradients_test.cpp (DistGradients.*WithBatchStatHooks).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/siamese.h"
#include "tests/unit/test_util.h"

namespace siam {
namespace {

using test::error_of;
using test::expect_close;

// An identity all-reduce that records the shapes it was given.
BatchStatHooks one_rank(int64_t n, std::vector<Shape>* calls) {
  BatchStatHooks h;
  h.all_reduce_sum = [calls](const Tensor& t) {
    calls->push_back(t.shape());
    return t;
  };
  h.global_batch = n;
  return h;
}

struct Grads {
  Tensor loss, g1, g2;
};
template <class F> Grads run(const Tensor& a, const Tensor& b, F f) {
  Tensor x1 = a.clone().set_requires_grad(true), x2 = b.clone().set_requires_grad(true);
  Tensor l = f(x1, x2);
  l.backward();
  return {l.detach(), x1.grad(), x2.grad()};
}

// atol: gradients that are 0 mathematically (N 2: C_11 = 1 exactly) hold rounding noise
void expect_same(const Grads& got, const Grads& want, double rtol, const std::string& what) {
  const double atol = rtol < 1e-6 ? 1e-12 : 1e-6;
  expect_close(got.loss, want.loss, rtol, 0, what + " loss");
  expect_close(got.g1, want.g1, rtol, atol, what + " dz1");
  expect_close(got.g2, want.g2, rtol, atol, what + " dz2");
}

TEST(BatchStatHooks, BarlowTwinsOnOneRankIsTheFusedOp) {
  manual_seed(81);
  for (DType dt : {DType::f64, DType::f32})
    for (auto [n, d] : std::vector<std::pair<int64_t, int64_t>>{{2, 1}, {7, 3}, {40, 19}, {12, 33}}) {
      const std::string what = std::string(dtype_name(dt)) + " N " + std::to_string(n) + " D " + std::to_string(d);
      Tensor a = mul(randn({n, d}), 2.0).to(dt), b = add(randn({n, d}), 1.0).to(dt);
      std::vector<Shape> calls;
      const BatchStatHooks h = one_rank(n, &calls);
      Grads hooked =
          run(a, b, [&](const Tensor& x, const Tensor& y) { return barlow_twins_loss(x, y, 0.05, 1e-5, h); });
      Grads fused = run(a, b, [](const Tensor& x, const Tensor& y) { return barlow_twins_loss(x, y, 0.05, 1e-5); });
      expect_same(hooked, fused, dt == DType::f64 ? 1e-10 : 1e-4, "barlow " + what);
      EXPECT_EQ(calls, (std::vector<Shape>{{2 * d}, {2 * d}, {d, d}})) << what;
    }
}

TEST(BatchStatHooks, VicregOnOneRankIsTheFusedOp) {
  manual_seed(82);
  // N < D takes the fused op's Gram form, N >= D its covariance form; the hooked form is always the latter
  for (DType dt : {DType::f64, DType::f32})
    for (auto [n, d] : std::vector<std::pair<int64_t, int64_t>>{{2, 1}, {7, 3}, {40, 19}, {12, 33}}) {
      const std::string what = std::string(dtype_name(dt)) + " N " + std::to_string(n) + " D " + std::to_string(d);
      Tensor a = randn({n, d}).to(dt), b = add(mul(a, 0.3), mul(randn({n, d}).to(dt), 0.5));
      std::vector<Shape> calls;
      const BatchStatHooks h = one_rank(n, &calls);
      auto weighted = [](const VicregTerms& t) {
        return add(add(mul(t.invariance, 25.0), mul(t.variance, 25.0)), t.covariance);
      };
      Grads hooked = run(a, b, [&](const Tensor& x, const Tensor& y) { return weighted(vicreg_terms(x, y, 1e-4, h)); });
      Grads fused = run(a, b, [&](const Tensor& x, const Tensor& y) { return weighted(vicreg_terms(x, y, 1e-4)); });
      expect_same(hooked, fused, dt == DType::f64 ? 1e-10 : 1e-4, "vicreg " + what);
      EXPECT_EQ(calls, (std::vector<Shape>{{}, {2 * d}, {2 * d}, {2 * d, d}})) << what;
      // each term alone, too
      VicregTerms th = vicreg_terms(a, b, 1e-4, h), tf = vicreg_terms(a, b, 1e-4);
      expect_close(th.invariance, tf.invariance, 1e-4, 0, "invariance " + what);
      expect_close(th.variance, tf.variance, 1e-4, 1e-12, "variance " + what);
      expect_close(th.covariance, tf.covariance, 1e-4, 1e-12, "covariance " + what);
    }
}

TEST(BatchStatHooks, HalfInputsAndBadHooksAreHandled) {
  manual_seed(83);
  Tensor a = randn({9, 5}), b = randn({9, 5});
  std::vector<Shape> calls;
  Tensor lh = barlow_twins_loss(a.to(DType::bf16), b.to(DType::bf16), 0.05, 1e-5, one_rank(9, &calls));
  EXPECT_EQ(lh.dtype(), DType::f32);
  EXPECT_EQ(lh.item(), barlow_twins_loss(a.to(DType::bf16).to(DType::f32), b.to(DType::bf16).to(DType::f32), 0.05, 1e-5,
                                         one_rank(9, &calls))
                           .item());
  BatchStatHooks empty;
  empty.global_batch = 9;
  EXPECT_NE(error_of([&] { barlow_twins_loss(a, b, 0.05, 1e-5, empty); }).find("hooks.all_reduce_sum is empty"),
            std::string::npos);
  const std::string e = error_of([&] { vicreg_terms(a, b, 1e-4, one_rank(4, &calls)); });
  EXPECT_NE(e.find("vicreg_terms: hooks.global_batch (4)"), std::string::npos) << e;
  // one local row is fine when the global batch has more
  EXPECT_NO_THROW(vicreg_terms(a.narrow(0, 0, 1), b.narrow(0, 0, 1), 1e-4, one_rank(2, &calls)));
}

}  // namespace
}  // namespace siam

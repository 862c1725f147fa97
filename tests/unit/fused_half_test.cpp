// bf16/f16 inputs of every fused siamese op (engine/ops/siamese.h, consistency.h, sinkhorn.h, whiten.h):
// half-precision storage, f32 arithmetic. Each op on half inputs must give exactly what the f32 op gives on the
// half-rounded values (the only difference is the input rounding, so the arithmetic is f32), an f32 loss, and
// gradients in the input's dtype that are the f32 gradients rounded once. NtXentBf16 (infonce_forms_test.cpp)
// checks nt_xent the same way and against unrounded f32 inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/siamese.h"
#include "engine/ops/sinkhorn.h"
#include "engine/ops/whiten.h"
#include "tests/unit/test_util.h"

namespace siam {
namespace {

using Op = std::function<Tensor(const std::vector<Tensor>&)>;

void expect_bitwise(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(a.to(DType::f64).to_vector<double>(), b.to(DType::f64).to_vector<double>()) << what;
}

// f on half copies of xs (those in `grad` differentiable) against f on their f32 values.
void expect_half_is_f32_on_rounded(const std::string& name, const Op& f, const std::vector<Tensor>& xs,
                                   const std::vector<bool>& grad, DType half) {
  SCOPED_TRACE(name + " " + dtype_name(half));
  std::vector<Tensor> h, r;
  for (size_t i = 0; i < xs.size(); ++i) {
    h.push_back(xs[i].to(half).set_requires_grad(grad[i]));
    r.push_back(h.back().detach().to(DType::f32).set_requires_grad(grad[i]));
  }
  Tensor lh = f(h), lr = f(r);
  EXPECT_EQ(lh.dtype(), DType::f32);
  expect_bitwise(lh, lr, "value");
  const bool any = std::find(grad.begin(), grad.end(), true) != grad.end();
  ASSERT_EQ(lh.requires_grad(), any);
  if (!any) return;
  lh.backward();
  lr.backward();
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!grad[i]) continue;
    ASSERT_TRUE(h[i].grad().defined()) << "input " << i;
    EXPECT_EQ(h[i].grad().dtype(), half) << "input " << i;
    expect_bitwise(h[i].grad(), r[i].grad().to(half), "gradient " + std::to_string(i));
  }
}

void for_both_halves(const std::string& name, const Op& f, const std::vector<Tensor>& xs,
                     const std::vector<bool>& grad) {
  for (DType half : {DType::bf16, DType::f16}) expect_half_is_f32_on_rounded(name, f, xs, grad, half);
}

TEST(FusedHalf, MocoInfonce) {
  manual_seed(71);
  for (int64_t n : {5, 33}) {
    Tensor q = randn({n, 24}), k = randn({n, 24}), queue = randn({17, 24});
    for (bool normalize : {true, false})
      for_both_halves(
          "moco n " + std::to_string(n) + (normalize ? " normalized" : " raw"),
          [normalize](const std::vector<Tensor>& x) { return moco_infonce(x[0], x[1], x[2], 0.2, normalize); },
          {q, k, queue}, {true, false, false});
  }
}

TEST(FusedHalf, BarlowTwins) {
  manual_seed(72);
  for (int64_t n : {3, 40})
    for_both_halves("barlow n " + std::to_string(n),
                    [](const std::vector<Tensor>& x) { return barlow_twins_loss(x[0], x[1], 5e-3, 1e-5); },
                    {mul(randn({n, 19}), 3.0), randn({n, 19})}, {true, true});
}

TEST(FusedHalf, VicregTerms) {
  manual_seed(73);
  for (int64_t n : {6, 40})  // both forms: the N x N Gram matrix (N < D) and the D x D covariance
    for_both_halves("vicreg n " + std::to_string(n),
                    [](const std::vector<Tensor>& x) {
                      VicregTerms t = vicreg_terms(x[0], x[1]);
                      EXPECT_EQ(t.variance.dtype(), DType::f32);
                      EXPECT_EQ(t.covariance.dtype(), DType::f32);
                      return add(add(mul(t.invariance, 25.0), mul(t.variance, 25.0)), t.covariance);
                    },
                    {randn({n, 21}), add(randn({n, 21}), 0.5)}, {true, true});
}

TEST(FusedHalf, NormalizedMse) {
  manual_seed(74);
  for_both_halves("normalized mse", [](const std::vector<Tensor>& x) { return normalized_mse(x[0], x[1]); },
                  {randn({29, 16}), randn({29, 16})}, {true, true});
}

TEST(FusedHalf, Sinkhorn) {
  manual_seed(75);
  Tensor s = randn({37, 11});
  for (bool log_domain : {false, true})
    for_both_halves(log_domain ? "sinkhorn log" : "sinkhorn",
                    [log_domain](const std::vector<Tensor>& x) { return sinkhorn(x[0], 0.05, 3, log_domain); }, {s},
                    {false});
}

TEST(FusedHalf, WhitenReturnsTheInputsDtype) {
  manual_seed(76);
  Tensor w = randn({48, 6}), x = randn({48, 6});
  for (WhitenAlgo algo : {WhitenAlgo::cholesky, WhitenAlgo::newton_schulz})
    for (DType half : {DType::bf16, DType::f16})
      expect_half_is_f32_on_rounded(
          algo == WhitenAlgo::cholesky ? "whiten cholesky" : "whiten newton-schulz",
          [algo, w, half](const std::vector<Tensor>& in) {
            Tensor y = whiten(in[0], 1e-3, algo, 5);
            EXPECT_EQ(y.dtype(), in[0].dtype());
            // the f32 side rounds its output as the half op does, so both see the same values downstream
            return sum(mul(y.to(half).to(DType::f32), w));
          },
          {x}, {true}, half);
}

TEST(FusedHalf, InfonceForms) {
  manual_seed(77);
  const int64_t n = 12, d = 16;
  Tensor a = randn({n, d}), b = randn({n, d}), c = randn({n, d});
  Tensor labels = from_vector_i64({0, 1, 2, 0, 1, 2, 3, 3, 0, 5, 6, 1}, {n});
  for_both_halves("supcon", [labels](const std::vector<Tensor>& x) { return supcon(x[0], labels, 0.1); }, {a}, {true});
  for_both_halves("nt_xent_multi", [](const std::vector<Tensor>& x) { return nt_xent_multi(x, 0.1); }, {a, b, c},
                  {true, true, true});
  for_both_halves("clip", [](const std::vector<Tensor>& x) { return clip_loss(x[0], x[1], 0.07); }, {a, b},
                  {true, true});
  // rank 1 of 2: local rows 6..11 against the gathered columns of both ranks
  for_both_halves("nt_xent_gathered",
                  [](const std::vector<Tensor>& x) { return nt_xent_gathered(x[0], x[1], x[2], x[3], 6, 0.1); },
                  {a.narrow(0, 6, 6).contiguous(), b.narrow(0, 6, 6).contiguous(), a, b}, {true, true, true, true});
}

}  // namespace
}  // namespace siam

// Gradient-check samples for the fused consistency and whitening losses (run by tests/unit/op_registry_test.cpp,
// f64 central differences). Whitening: D = 2, 3, 5 with ragged M, both algorithms, with and without shrinkage.
#include "engine/ops/consistency.h"
#include "engine/ops/shape.h"
#include "engine/ops/whiten.h"
#include "tests/unit/op_samples.h"

namespace siam::test {
namespace {

using In = std::vector<Tensor>;

SIAM_OP_SAMPLES("whiten") {
  auto chol = [](double eps) { return [eps](const In& v) { return whiten(v[0], eps); }; };
  auto ns = [](double eps, int iters) {
    return [eps, iters](const In& v) { return whiten(v[0], eps, WhitenAlgo::newton_schulz, iters); };
  };
  return {
      {"cholesky M=3 D=2", {rnd({3, 2})}, chol(0.0)},
      {"cholesky M=7 D=3", {rnd({7, 3})}, chol(0.0)},
      {"cholesky M=11 D=5 eps=0.1", {rnd({11, 5})}, chol(0.1)},
      {"cholesky M=9 D=5", {rnd({9, 5})}, chol(0.0)},
      {"cholesky M=4 D=5 eps=0.5 (M <= D with shrinkage)", {rnd({4, 5})}, chol(0.5)},
      {"cholesky non-contiguous M=6 D=3", {rnd_noncontig({6, 3})}, chol(0.0)},
      {"newton_schulz M=3 D=2 iters=1", {rnd({3, 2})}, ns(0.0, 1)},
      {"newton_schulz M=7 D=3 iters=5", {rnd({7, 3})}, ns(0.0, 5)},
      {"newton_schulz M=13 D=5 iters=4 eps=0.05", {rnd({13, 5})}, ns(0.05, 4)},
      {"newton_schulz non-contiguous M=8 D=2 iters=3", {rnd_noncontig({8, 2})}, ns(0.0, 3)},
  };
}

SIAM_OP_SAMPLES("normalized_mse") {
  auto f = [](const In& v) { return normalized_mse(v[0], v[1]); };
  return {
      {"N=1 D=1", {rnd({1, 1}, 0.2, 1.0), rnd({1, 1}, 0.2, 1.0)}, f},
      {"N=3 D=4", {rnd({3, 4}), rnd({3, 4})}, f},
      {"N=5 D=7", {rnd({5, 7}), rnd({5, 7})}, f},
      {"non-contiguous N=4 D=3", {rnd_noncontig({4, 3}), rnd_noncontig({4, 3})}, f},
  };
}

SIAM_OP_SAMPLES("vicreg_terms") {
  auto f = [](double eps) {
    return [eps](const In& v) {
      VicregTerms t = vicreg_terms(v[0], v[1], eps);
      return stack({t.invariance, t.variance, t.covariance});
    };
  };
  // uniform(-1, 1) features have std ~0.58 (variance hinge active); uniform(-4, 4) ones ~2.3 (hinge inactive)
  return {
      {"N=2 D=1", {rnd({2, 1}), rnd({2, 1})}, f(1e-4)},
      {"N=5 D=3 (N >= D: covariance D x D)", {rnd({5, 3}), rnd({5, 3})}, f(1e-4)},
      {"N=3 D=6 (N < D: Gram form)", {rnd({3, 6}), rnd({3, 6})}, f(1e-4)},
      {"N=4 D=5 z1 wide (hinge inactive), z2 narrow", {rnd({4, 5}, -4.0, 4.0), rnd({4, 5})}, f(1e-4)},
      {"non-contiguous N=6 D=4", {rnd_noncontig({6, 4}), rnd_noncontig({6, 4})}, f(1e-2)},
  };
}

}  // namespace
}  // namespace siam::test

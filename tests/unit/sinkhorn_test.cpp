// Sinkhorn-Knopp (SwAV): the op against SwAV's exp/normalize loop written with engine ops, the fast kernel
// against the plain reference, the log domain against the plain one, finiteness for small eps, the marginals
// (rows sum to 1, prototype columns to B/K at convergence), no gradient, and the distributed form (two ranks in
// two threads through the all-reduce hook) against one process on the whole batch.
#include "engine/ops/sinkhorn.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "kernels/cpu/sinkhorn.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

namespace kc = kernels::cpu;

// SwAV's distributed_sinkhorn on one process, op for op.
Tensor sinkhorn_unfused(const Tensor& scores, double eps, int iters) {
  Tensor q = exp(div(scores, eps)).t();  // (K, B)
  const int64_t k = q.size(0), b = q.size(1);
  q = div(q, sum(q));
  for (int it = 0; it < iters; ++it) {
    q = div(div(q, sum(q, {1}, true)), double(k));
    q = div(div(q, sum(q, {0}, true)), double(b));
  }
  return mul(q, double(b)).t().contiguous();
}

// Cosine-like scores in [-1, 1].
Tensor scores_of(int64_t b, int64_t k, DType dt, double scale = 1.0) { return uniform({b, k}, -scale, scale, dt); }

struct Size {
  int64_t b, k;
};
const Size kSizes[] = {{1, 1}, {1, 5}, {6, 1}, {37, 13}, {130, 300}, {256, 70}};

TEST(Sinkhorn, MatchesCompositionF64) {
  manual_seed(31);
  for (Size s : kSizes)
    for (int iters : {1, 3, 10})
      for (bool log_domain : {false, true}) {
        SCOPED_TRACE("B=" + std::to_string(s.b) + " K=" + std::to_string(s.k) + " iters=" + std::to_string(iters) +
                     (log_domain ? " log" : " plain"));
        Tensor x = scores_of(s.b, s.k, DType::f64);
        expect_close(sinkhorn(x, 0.05, iters, log_domain), sinkhorn_unfused(x, 0.05, iters), 1e-11, 0, "q");
      }
}

TEST(Sinkhorn, MatchesCompositionF32) {
  manual_seed(32);
  for (Size s : kSizes)
    for (bool log_domain : {false, true}) {
      SCOPED_TRACE("B=" + std::to_string(s.b) + " K=" + std::to_string(s.k) + (log_domain ? " log" : " plain"));
      Tensor x = scores_of(s.b, s.k, DType::f32);
      expect_close(sinkhorn(x, 0.05, 3, log_domain), sinkhorn_unfused(x, 0.05, 3), 2e-5, 0, "q");
    }
}

TEST(SinkhornKernel, FastPathMatchesReference) {
  manual_seed(33);
  for (Size s : {Size{37, 13}, Size{300, 129}, Size{5, 700}})
    for (bool log_domain : {false, true}) {
      SCOPED_TRACE("B=" + std::to_string(s.b) + " K=" + std::to_string(s.k) + (log_domain ? " log" : " plain"));
      Tensor x = scores_of(s.b, s.k, DType::f64, 2.0);
      std::vector<double> ref(s.b * s.k), out(s.b * s.k);
      kc::sinkhorn_ref<double>(s.b, s.k, x.data<double>(), 0.03, 4, log_domain, ref.data());
      kc::sinkhorn<double>(s.b, s.k, x.data<double>(), 0.03, 4, log_domain, 0, {}, out.data());
      expect_close(from_vector(out, {s.b, s.k}, DType::f64), from_vector(ref, {s.b, s.k}, DType::f64), 1e-12, 0, "q");
    }
}

TEST(Sinkhorn, LogDomainEqualsPlainWhereBothAreFinite) {
  manual_seed(34);
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor x = scores_of(200, 150, dt);
    for (double eps : {0.5, 0.05, 0.02}) {
      SCOPED_TRACE("eps=" + std::to_string(eps) + (dt == DType::f32 ? " f32" : " f64"));
      expect_close(sinkhorn(x, eps, 3, true), sinkhorn(x, eps, 3, false), dt == DType::f32 ? 2e-5 : 1e-12, 0, "q");
    }
  }
}

// eps = 0.01 with scores up to 10: scores / eps spans [-1000, 1000], far beyond exp's range in f32 and f64.
// The log form stays finite and agrees with the f64 log-domain reference.
TEST(Sinkhorn, LogDomainIsFiniteForSmallEpsAndLargeScores) {
  manual_seed(35);
  const int64_t b = 64, k = 40;
  Tensor x = scores_of(b, k, DType::f32, 10.0);
  Tensor q = sinkhorn(x, 0.01, 3, true);
  for (float v : q.to_vector<float>()) ASSERT_TRUE(std::isfinite(v) && v >= 0);
  std::vector<double> ref(b * k);
  Tensor x64 = x.to(DType::f64);
  kc::sinkhorn_ref<double>(b, k, x64.data<double>(), 0.01, 3, true, ref.data());
  expect_close(q, from_vector(ref, {b, k}, DType::f64), 1e-4, 0, "q vs f64 reference");
  expect_close(sum(q, {1}), ones({b}), 0, 1e-5, "row sums");
}

TEST(Sinkhorn, RowsSumToOneAndColumnsToBOverK) {
  manual_seed(36);
  const int64_t b = 96, k = 30;
  for (DType dt : {DType::f64, DType::f32})
    for (bool log_domain : {false, true}) {
      SCOPED_TRACE(std::string(dt == DType::f32 ? "f32" : "f64") + (log_domain ? " log" : " plain"));
      const double tol = dt == DType::f32 ? 1e-5 : 1e-12;
      Tensor x = scores_of(b, k, dt);
      Tensor q3 = sinkhorn(x, 0.05, 3, log_domain);
      expect_close(sum(q3, {1}), ones({b}, dt), 0, tol, "row sums after 3 iterations");
      // prototypes get B/K each only approximately after 3 iterations
      expect_close(sum(q3, {0}), full({k}, double(b) / double(k), dt), 0.5, 0, "column sums after 3 iterations");
      Tensor q = sinkhorn(x, 0.05, 300, log_domain);
      expect_close(sum(q, {1}), ones({b}, dt), 0, tol, "row sums");
      expect_close(sum(q, {0}), full({k}, double(b) / double(k), dt), 1e-4, 0, "column sums after 300 iterations");
    }
}

// Per-sample sums over rows in parallel, per-prototype sums over fixed blocks of prototypes: no atomics, no
// thread-count-dependent partial sums.
TEST(Sinkhorn, SameResultOnAnyThreadCount) {
  manual_seed(38);
  Tensor x = scores_of(300, 517, DType::f32);  // above the kernel's parallel threshold
  for (bool log_domain : {false, true}) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    auto one = sinkhorn(x, 0.05, 3, log_domain).to_vector<float>();
    omp_set_num_threads(2);
    auto two = sinkhorn(x, 0.05, 3, log_domain).to_vector<float>();
    omp_set_num_threads(prev);
    EXPECT_EQ(one, two) << (log_domain ? "log" : "plain");
  }
}

TEST(Sinkhorn, OutputNeverRequiresGrad) {
  Tensor x = randn({8, 5}).set_requires_grad(true);
  Tensor q = sinkhorn(x);
  EXPECT_FALSE(q.requires_grad());
  EXPECT_EQ(q.grad_fn(), nullptr);
  EXPECT_FALSE(sinkhorn(x, 0.05, 3, true).requires_grad());
}

// Non-contiguous scores (a transposed view) give the same codes as their contiguous copy.
TEST(Sinkhorn, NonContiguousScores) {
  Tensor x = randn({9, 14}).t();  // (14, 9)
  expect_close(sinkhorn(x), sinkhorn(x.contiguous()), 0, 0, "q");
}

// An in-process all-reduce over `world` threads: each call blocks until every rank has added its values.
class ThreadAllReduce {
 public:
  explicit ThreadAllReduce(int world) : world_(world) {}
  void operator()(Tensor& t) {
    double* p = t.data<double>();
    const int64_t n = t.numel();
    std::unique_lock<std::mutex> lk(mu_);
    if (arrived_ == 0) acc_.assign(n, 0.0);
    for (int64_t i = 0; i < n; ++i) acc_[i] += p[i];
    const int64_t gen = gen_;
    if (++arrived_ == world_) {
      result_ = acc_;
      arrived_ = 0;
      ++gen_;
      ++calls_;
      cv_.notify_all();
    } else {
      cv_.wait(lk, [&] { return gen_ != gen; });
    }
    std::copy(result_.begin(), result_.end(), p);
  }
  int calls() const { return calls_; }

 private:
  int world_, arrived_ = 0, calls_ = 0;
  int64_t gen_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<double> acc_, result_;
};

TEST(Sinkhorn, DistributedHooksMatchOneProcess) {
  manual_seed(37);
  const int64_t b = 37, k = 23, b0 = 20;  // ragged split: 20 + 17
  for (DType dt : {DType::f64, DType::f32})
    for (bool log_domain : {false, true}) {
      SCOPED_TRACE(std::string(dt == DType::f32 ? "f32" : "f64") + (log_domain ? " log" : " plain"));
      // rank 1's scores are shifted up, so the ranks' maxima (and lse) differ
      Tensor x = cat({scores_of(b0, k, dt), add(scores_of(b - b0, k, dt), 0.7)}, 0);
      Tensor whole = sinkhorn(x, 0.04, 4, log_domain);
      ThreadAllReduce reduce(2);
      SinkhornHooks hooks;
      hooks.all_reduce_sum = [&reduce](Tensor& t) { reduce(t); };
      hooks.global_batch = b;
      Tensor parts[2];
      std::thread r1([&] { parts[1] = sinkhorn(x.narrow(0, b0, b - b0), 0.04, 4, log_domain, &hooks); });
      parts[0] = sinkhorn(x.narrow(0, 0, b0), 0.04, 4, log_domain, &hooks);
      r1.join();
      EXPECT_EQ(reduce.calls(), 1 + 4);
      expect_close(cat({parts[0], parts[1]}, 0), whole, dt == DType::f32 ? 2e-5 : 1e-12, 0, "q");
    }
}

TEST(Sinkhorn, HooksWithoutAllReduceAreOneProcess) {
  Tensor x = randn({12, 7});
  SinkhornHooks hooks;
  expect_close(sinkhorn(x, 0.05, 3, false, &hooks), sinkhorn(x), 0, 0, "q");
}

TEST(SinkhornErrors, NameTheOpAndValues) {
  Tensor x = randn({4, 6});
  EXPECT_NE(error_of([&] { sinkhorn(randn({4})); }).find("sinkhorn: scores must be (B, K)"), std::string::npos);
  EXPECT_NE(error_of([&] { sinkhorn(x, 0.0); }).find("sinkhorn: eps must be a positive finite number, got 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { sinkhorn(x, 0.05, 0); }).find("sinkhorn: iters must be >= 1, got 0"), std::string::npos);
  EXPECT_NE(error_of([&] { sinkhorn(randn({0, 3})); }).find("at least one sample"), std::string::npos);
  SinkhornHooks h;
  h.global_batch = 3;
  EXPECT_NE(error_of([&] { sinkhorn(x, 0.05, 3, false, &h); }).find("global_batch (3) is smaller than the local batch"),
            std::string::npos);
  h.global_batch = 0;
  h.all_reduce_sum = [](Tensor& t) { t = zeros({1}); };
  EXPECT_NE(error_of([&] { sinkhorn(x, 0.05, 3, false, &h); }).find("all_reduce_sum hook must sum in place"),
            std::string::npos);
}

}  // namespace
}  // namespace siam::test

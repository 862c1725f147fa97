// The fused siamese losses against the unfused compositions of primitive engine ops (values and gradients),
// the tiled kernels against their plain references at ragged multi-tile sizes, thread-count determinism, the
// workspace bound (never M x M) and the error messages.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/core/random.h"
#include "engine/core/storage.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/ops/siamese.h"
#include "kernels/cpu/infonce.h"
#include "kernels/cpu/xcorr.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

namespace kc = kernels::cpu;

Tensor leaf(const Shape& s, DType dt = DType::f32) { return randn(s, TensorOptions(dt)).set_requires_grad(true); }

// ---- unfused compositions ----

Tensor nt_xent_unfused(const Tensor& z1, const Tensor& z2, double t, bool nrm) {
  const int64_t n = z1.size(0), m = 2 * n;
  Tensor z = cat({z1, z2}, 0);  // (2N, D)
  if (nrm) z = normalize(z, 1);
  Tensor s = mul(matmul(z, z.t()), 1.0 / t);          // (2N, 2N)
  s = add(s, mul(eye(m, z1.options()), -1e9));         // self-similarity masked
  std::vector<int64_t> target(m);
  for (int64_t i = 0; i < m; ++i) target[i] = (i + n) % m;
  return cross_entropy(s, from_vector_i64(target, {m}));
}

Tensor moco_unfused(const Tensor& q, const Tensor& k, const Tensor& queue, double t, bool nrm) {
  Tensor zq = nrm ? normalize(q, 1) : q, zk = nrm ? normalize(k.detach(), 1) : k.detach();
  Tensor zc = nrm ? normalize(queue.detach(), 1) : queue.detach();
  Tensor pos = sum(mul(zq, zk), {1}, true);                        // (N, 1)
  Tensor logits = mul(cat({pos, matmul(zq, zc.t())}, 1), 1.0 / t);  // (N, 1 + K)
  return cross_entropy(logits, zeros({q.size(0)}, DType::i64));
}

Tensor barlow_unfused(const Tensor& z1, const Tensor& z2, double lambda, double eps) {
  auto stdz = [eps](const Tensor& z) {
    return div(sub(z, mean(z, {0}, true)), sqrt(add(var(z, {0}, 0, true), eps)));
  };
  const int64_t n = z1.size(0), d = z1.size(1);
  Tensor c = div(matmul(stdz(z1).t(), stdz(z2)), double(n));  // (D, D)
  Tensor e = eye(d, z1.options());
  Tensor diag = sum(mul(c, e), {1});
  Tensor off = mul(c, rsub(1.0, e));
  return add(sum(square(rsub(1.0, diag))), mul(sum(square(off)), lambda));
}

// ---- InfoNCE: op against the composition ----

struct NceCase {
  int64_t n, d;
  double t;
  bool nrm;
};

TEST(NtXent, MatchesCompositionF32) {
  manual_seed(7);
  // ragged: 2N not a multiple of the 64-row or 512-column tiles, D odd; 2N = 600 spans two column tiles
  for (NceCase c : {NceCase{3, 4, 0.5, true}, NceCase{33, 7, 0.1, true}, NceCase{130, 33, 0.5, true},
                    NceCase{300, 17, 0.1, true}, NceCase{45, 9, 0.5, false}}) {
    SCOPED_TRACE("N=" + std::to_string(c.n) + " D=" + std::to_string(c.d) + " t=" + std::to_string(c.t) +
                 (c.nrm ? "" : " unnormalized"));
    Tensor a1 = leaf({c.n, c.d}), a2 = leaf({c.n, c.d});
    if (!c.nrm) {  // keep unnormalized logits in a sane range
      a1 = mul(a1.detach(), 0.3).set_requires_grad(true);
      a2 = mul(a2.detach(), 0.3).set_requires_grad(true);
    }
    Tensor b1 = a1.detach().clone().set_requires_grad(true), b2 = a2.detach().clone().set_requires_grad(true);
    Tensor lf = nt_xent(a1, a2, c.t, c.nrm);
    Tensor lu = nt_xent_unfused(b1, b2, c.t, c.nrm);
    EXPECT_NEAR(lf.item(), lu.item(), 2e-5 * std::abs(lu.item()) + 1e-6);
    lf.backward();
    lu.backward();
    expect_close(a1.grad(), b1.grad(), 2e-4, 1e-7, "dz1");
    expect_close(a2.grad(), b2.grad(), 2e-4, 1e-7, "dz2");
  }
}

TEST(MocoInfonce, MatchesCompositionF32) {
  manual_seed(8);
  struct C {
    int64_t n, k, d;
    double t;
    bool nrm;
  };
  for (C c : {C{4, 9, 5, 0.2, true}, C{70, 600, 33, 0.07, true}, C{65, 513, 16, 0.5, true}, C{10, 0, 8, 0.2, true},
              C{33, 100, 7, 0.5, false}}) {
    SCOPED_TRACE("N=" + std::to_string(c.n) + " K=" + std::to_string(c.k) + " D=" + std::to_string(c.d));
    Tensor q = leaf({c.n, c.d}), k = randn({c.n, c.d}), queue = randn({c.k, c.d});
    if (!c.nrm) {
      q = mul(q.detach(), 0.3).set_requires_grad(true);
      k = mul(k, 0.3);
      queue = mul(queue, 0.3);
    }
    Tensor q2 = q.detach().clone().set_requires_grad(true);
    Tensor lf = moco_infonce(q, k, queue, c.t, c.nrm);
    Tensor lu = moco_unfused(q2, k, queue, c.t, c.nrm);
    EXPECT_NEAR(lf.item(), lu.item(), 2e-5 * std::abs(lu.item()) + 1e-6);
    lf.backward();
    lu.backward();
    expect_close(q.grad(), q2.grad(), 2e-4, 1e-7, "dq");
  }
}

TEST(MocoInfonce, KeysAndQueueGetNoGradient) {
  Tensor q = leaf({4, 6}), k = leaf({4, 6}), queue = leaf({5, 6});
  moco_infonce(q, k, queue, 0.2).backward();
  EXPECT_TRUE(q.grad().defined());
  EXPECT_FALSE(k.grad().defined());
  EXPECT_FALSE(queue.grad().defined());
}

// ---- InfoNCE: tiled kernel against the materializing reference (f64 and f32, multi-tile) ----

template <class T>
void kernel_vs_ref(const kc::InfonceArgs& a, bool nrm, double tol) {
  const int64_t M = a.rows, D = a.dim;
  const DType dt = std::is_same_v<T, float> ? DType::f32 : DType::f64;
  Tensor x = randn({M, D}, dt), keys = randn({M, D}, dt), queue = randn({std::max<int64_t>(a.cols, 1), D}, dt);
  std::vector<T> dref(M * D), z(M * D), rn(M), zk(M * D), zc(queue.numel()), lse(M), dz(M * D);
  const T* kp = a.self ? nullptr : keys.data<T>();
  const T* qp = a.self ? nullptr : queue.data<T>();
  double lref = kc::infonce_ref<T>(a, nrm, x.data<T>(), kp, qp, dref.data());
  const T* zp = x.data<T>();
  if (nrm) {
    kc::infonce_normalize_rows<T>(M, D, x.data<T>(), z.data(), rn.data());
    zp = z.data();
    if (!a.self) {
      kc::infonce_normalize_rows<T>(M, D, kp, zk.data(), nullptr);
      kc::infonce_normalize_rows<T>(a.cols, D, qp, zc.data(), nullptr);
      kp = zk.data();
      qp = zc.data();
    }
  }
  double l = kc::infonce_forward<T>(a, zp, kp, qp, lse.data());
  kc::infonce_backward<T>(a, T(1), zp, kp, qp, lse.data(), dz.data());
  if (nrm) kc::infonce_normalize_backward<T>(M, D, zp, rn.data(), dz.data(), dz.data());
  EXPECT_NEAR(l, lref, tol * std::abs(lref));
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < M * D; ++i) {
    diff = std::max(diff, std::abs(double(dz[i]) - double(dref[i])));
    scale = std::max(scale, std::abs(double(dref[i])));
  }
  EXPECT_LE(diff, 10 * tol * (scale + 1e-3)) << "max diff " << diff << " of " << scale;
}

TEST(InfonceKernel, TiledMatchesReference) {
  manual_seed(9);
  for (int64_t n : {1, 5, 37, 300}) {
    for (double t : {0.1, 0.5}) {
      kc::InfonceArgs a;
      a.rows = a.cols = 2 * n;
      a.dim = 7;
      a.pos_offset = n;
      a.temperature = t;
      SCOPED_TRACE("self 2N=" + std::to_string(2 * n) + " t=" + std::to_string(t));
      kernel_vs_ref<double>(a, true, 1e-12);
      kernel_vs_ref<double>(a, false, 1e-12);
      kernel_vs_ref<float>(a, true, 2e-5);
      kc::InfonceArgs b = a;
      b.self = false;
      b.rows = n + 3;
      b.cols = 7 * n + 2;
      SCOPED_TRACE("cross M=" + std::to_string(b.rows) + " K=" + std::to_string(b.cols));
      kernel_vs_ref<double>(b, true, 1e-12);
      kernel_vs_ref<float>(b, true, 2e-5);
    }
  }
}

TEST(InfonceKernel, SameResultOnAnyThreadCount) {
  manual_seed(10);
  Tensor z1 = leaf({200, 24}), z2 = leaf({200, 24});
  auto run = [&](int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    z1.set_grad(Tensor());
    z2.set_grad(Tensor());
    Tensor l = nt_xent(z1, z2, 0.1);
    l.backward();
    omp_set_num_threads(prev);
    return std::make_pair(l.item(), z1.grad().to_vector<float>());
  };
  auto r1 = run(1), r2 = run(2);
  EXPECT_EQ(r1.first, r2.first);
  EXPECT_EQ(r1.second, r2.second);
}

// Few queries against a long queue (MoCo's 256 against 65536): the columns are split into ranges so that both
// threads work (kc::infonce_column_splits), and the merged result still equals the reference, and is the same on
// any thread count.
TEST(InfonceKernel, ColumnSplitsMatchTheReferenceOnAnyThreadCount) {
  manual_seed(12);
  EXPECT_EQ(kc::infonce_column_splits(256, 65536), 8);
  EXPECT_EQ(kc::infonce_column_splits(1024, 16384), 2);  // 4 row tiles, 2 ranges of 8192
  EXPECT_EQ(kc::infonce_column_splits(100, 1000), 1);    // too few columns to split
  EXPECT_EQ(kc::infonce_column_splits(2048, 65536), 1);  // 8 row tiles: enough work
  for (int64_t k : {int64_t(4100), int64_t(9000)}) {
    kc::InfonceArgs b;
    b.self = false;
    b.rows = 70;
    b.cols = k;
    b.dim = 9;
    b.temperature = 0.2;
    SCOPED_TRACE("cross M=70 K=" + std::to_string(k) + ", " + std::to_string(kc::infonce_column_splits(70, k)) +
                 " ranges");
    EXPECT_GT(kc::infonce_column_splits(70, k), 1);
    kernel_vs_ref<double>(b, true, 1e-12);
    kernel_vs_ref<double>(b, false, 1e-12);
    kernel_vs_ref<float>(b, true, 2e-5);
  }
  Tensor q = leaf({60, 16}), key = leaf({60, 16}), queue = randn({9000, 16});
  auto run = [&](int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    q.set_grad(Tensor());
    Tensor l = moco_infonce(q, key, queue, 0.2);
    l.backward();
    omp_set_num_threads(prev);
    return std::make_pair(l.item(), q.grad().to_vector<float>());
  };
  auto r1 = run(1), r2 = run(2), r3 = run(3);
  EXPECT_EQ(r1.first, r2.first);
  EXPECT_EQ(r1.second, r2.second);
  EXPECT_EQ(r1.second, r3.second);
}

// The tiled kernel's scratch is a row tile x column tile per thread plus M floats: O(tile * M), not M^2.
TEST(InfonceKernel, WorkspaceIsTileSizedNotSquare) {
  for (int64_t m : {512, 8192, 65536}) {
    kc::InfonceArgs a;
    a.rows = a.cols = m;
    a.dim = 128;
    a.pos_offset = m / 2;
    const int threads = 2;
    const int64_t ws = kc::infonce_workspace_elems(a, threads);
    EXPECT_LE(ws, threads * kc::kInfonceTileRows * kc::kInfonceTileCols + m) << "M=" << m;
    if (m >= 8192) {
      EXPECT_LT(ws * 64, m * m) << "M=" << m;
    }
  }
}

// Measured: tensor memory allocated during nt_xent forward + backward (the allocator's high-water mark) plus
// the kernel's scratch stays far below one 2N x 2N f32 matrix.
TEST(InfonceKernel, ForwardBackwardNeverHoldsTheSquareMatrix) {
  const int64_t n = 1024, d = 16, m = 2 * n;
  Tensor z1 = leaf({n, d}), z2 = leaf({n, d});
  const size_t base = cpu_alloc_stats().allocated_bytes;
  cpu_reset_peak_stats();
  Tensor l = nt_xent(z1, z2, 0.1);
  l.backward();
  const size_t peak = cpu_alloc_stats().peak_allocated_bytes - base;
  kc::InfonceArgs a;
  a.rows = a.cols = m;
  a.dim = d;
  const size_t ws = 4 * size_t(kc::infonce_workspace_elems(a, omp_get_max_threads()));
  EXPECT_LT(peak + ws, size_t(m * m * 4) / 4) << "peak " << peak << " B, scratch " << ws << " B";
  EXPECT_LT(peak, size_t(8 * m * d * 4)) << "tensors beyond O(M D)";
}

// ---- Barlow Twins ----

TEST(BarlowTwins, MatchesCompositionF32) {
  manual_seed(11);
  struct C {
    int64_t n, d;
    double lambda;
  };
  for (C c : {C{8, 5, 0.5}, C{37, 65, 5e-3}, C{100, 130, 0.05}}) {
    SCOPED_TRACE("N=" + std::to_string(c.n) + " D=" + std::to_string(c.d));
    Tensor a1 = leaf({c.n, c.d}), a2 = add(mul(a1.detach(), 0.5), randn({c.n, c.d})).set_requires_grad(true);
    Tensor b1 = a1.detach().clone().set_requires_grad(true), b2 = a2.detach().clone().set_requires_grad(true);
    Tensor lf = barlow_twins_loss(a1, a2, c.lambda, 1e-5);
    Tensor lu = barlow_unfused(b1, b2, c.lambda, 1e-5);
    EXPECT_NEAR(lf.item(), lu.item(), 2e-5 * std::abs(lu.item()));
    lf.backward();
    lu.backward();
    expect_close(a1.grad(), b1.grad(), 2e-4, 1e-7, "dz1");
    expect_close(a2.grad(), b2.grad(), 2e-4, 1e-7, "dz2");
  }
}

TEST(BarlowTwins, FusedMatchesReference) {
  manual_seed(12);
  const int64_t n = 29, d = 67;
  Tensor z1 = randn({n, d}, DType::f64), z2 = randn({n, d}, DType::f64);
  std::vector<double> r1(n * d), r2(n * d), f1(n * d), f2(n * d), h1(n * d), h2(n * d), s1(d), s2(d), c(d * d);
  double lref = kc::xcorr_ref<double>(n, d, z1.data<double>(), z2.data<double>(), 0.01, 1e-5, r1.data(), r2.data());
  double l = kc::xcorr_forward<double>(n, d, z1.data<double>(), z2.data<double>(), 0.01, 1e-5, h1.data(), h2.data(),
                                       s1.data(), s2.data(), c.data());
  kc::xcorr_backward<double>(n, d, 1.0, 0.01, h1.data(), h2.data(), s1.data(), s2.data(), c.data(), f1.data(),
                             f2.data());
  EXPECT_NEAR(l, lref, 1e-10 * std::abs(lref));
  for (int64_t i = 0; i < n * d; ++i) {
    ASSERT_NEAR(f1[i], r1[i], 1e-10) << i;
    ASSERT_NEAR(f2[i], r2[i], 1e-10) << i;
  }
}

// ---- errors ----

TEST(SiameseErrors, NameTheOpAndShapes) {
  Tensor a = randn({4, 8}), b = randn({5, 8}), q = randn({4, 6});
  EXPECT_NE(error_of([&] { nt_xent(a, b, 0.1); }).find("nt_xent: the two views must have the same shape, got z1 [4, 8]"),
            std::string::npos)
      << error_of([&] { nt_xent(a, b, 0.1); });
  EXPECT_NE(error_of([&] { nt_xent(a, a, 0.0); }).find("nt_xent: temperature"), std::string::npos);
  EXPECT_NE(error_of([&] { nt_xent(a, a.to(DType::f64), 0.1); }).find("nt_xent: dtype mismatch"), std::string::npos);
  EXPECT_NE(error_of([&] { moco_infonce(q, q, a, 0.1); }).find("moco_infonce: queue"), std::string::npos);
  EXPECT_NE(error_of([&] { barlow_twins_loss(a, b); }).find("barlow_twins_loss"), std::string::npos);
  EXPECT_NE(error_of([&] { barlow_twins_loss(randn({1, 3}), randn({1, 3})); }).find("at least 2 samples"),
            std::string::npos);
}

}  // namespace
}  // namespace siam::test

// The other InfoNCE forms (engine/ops/siamese.h: supcon, nt_xent_multi, clip_loss, nt_xent_gathered) against
// unfused compositions of primitive engine ops (values and gradients, ragged multi-tile sizes), the tiled
// kernels against their materializing references in f64, the distributed form against the global loss,
// bf16 inputs, thread-count determinism, the memory bound and the error messages.
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
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

namespace kc = kernels::cpu;

Tensor leaf(const Shape& s, DType dt = DType::f32) { return randn(s, TensorOptions(dt)).set_requires_grad(true); }
Tensor twin(const Tensor& t) { return t.detach().clone().set_requires_grad(true); }

std::vector<int64_t> random_labels(int64_t m, int64_t classes, uint64_t seed) {
  std::vector<int64_t> l(m);
  uint64_t x = seed;
  for (int64_t i = 0; i < m; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    l[i] = static_cast<int64_t>((x >> 33) % static_cast<uint64_t>(classes)) * 7 - 5;  // arbitrary label values
  }
  return l;
}

// ---- unfused compositions ----

// SupCon over rows z with a (M, M) positive mask built on the host: log_softmax over j != i (diagonal at
// -1e9), mean over positives, mean over rows with a positive.
Tensor supcon_unfused(const Tensor& z0, const std::vector<int64_t>& labels, double t, bool nrm) {
  const int64_t m = z0.size(0);
  Tensor z = nrm ? normalize(z0, 1) : z0;
  Tensor s = add(mul(matmul(z, z.t()), 1.0 / t), mul(eye(m, z0.options()), -1e9));  // (M, M)
  Tensor logp = log_softmax(s, 1);
  std::vector<double> pos(m * m, 0.0), inv_cnt(m, 0.0);
  double valid = 0;
  for (int64_t i = 0; i < m; ++i) {
    double c = 0;
    for (int64_t j = 0; j < m; ++j)
      if (j != i && labels[j] == labels[i]) pos[i * m + j] = 1, ++c;
    inv_cnt[i] = c > 0 ? 1.0 / c : 0.0;
    valid += c > 0;
  }
  Tensor per_row =
      mul(sum(mul(logp, from_vector(pos, {m, m}, z0.options())), {1}), from_vector(inv_cnt, {m}, z0.options()));
  return div(neg(sum(per_row)), valid);
}

Tensor clip_unfused(const Tensor& a, const Tensor& b, double t, bool nrm) {
  Tensor za = nrm ? normalize(a, 1) : a, zb = nrm ? normalize(b, 1) : b;
  Tensor logits = mul(matmul(za, zb.t()), 1.0 / t);  // (N, N)
  Tensor target = arange(a.size(0));
  return mul(add(cross_entropy(logits, target), cross_entropy(logits.t(), target)), 0.5);
}

// Local rows [z1; z2] against the gathered [g1; g2], own column masked, the other view's column positive.
Tensor gathered_unfused(const Tensor& z1, const Tensor& z2, const Tensor& g1, const Tensor& g2, int64_t offset,
                        double t) {
  const int64_t n = z1.size(0), m = g1.size(0);
  Tensor x = normalize(cat({z1, z2}, 0), 1), g = normalize(cat({g1, g2}, 0), 1);
  std::vector<double> mask(2 * n * 2 * m, 0.0);
  std::vector<int64_t> target(2 * n);
  for (int64_t r = 0; r < 2 * n; ++r) {
    const int64_t own = r < n ? offset + r : m + offset + r - n;
    mask[r * 2 * m + own] = -1e9;
    target[r] = r < n ? m + offset + r : offset + r - n;
  }
  Tensor s = add(mul(matmul(x, g.t()), 1.0 / t), from_vector(mask, {2 * n, 2 * m}, z1.options()));
  return cross_entropy(s, from_vector_i64(target, {2 * n}));
}

// ---- SupCon / multi-view ----

TEST(SupCon, MatchesCompositionF32) {
  manual_seed(31);
  struct C {
    int64_t m, d, classes;
    double t;
    bool nrm;
  };
  // ragged, multi-tile (M > 256 rows and columns), a singleton-heavy case, unnormalized
  for (C c : {C{7, 5, 3, 0.5, true}, C{300, 17, 20, 0.1, true}, C{520, 33, 100, 0.2, true}, C{60, 8, 50, 0.5, true},
              C{45, 9, 4, 0.5, false}}) {
    SCOPED_TRACE("M=" + std::to_string(c.m) + " D=" + std::to_string(c.d) + " classes=" + std::to_string(c.classes));
    std::vector<int64_t> labels = random_labels(c.m, c.classes, c.m);
    Tensor a = c.nrm ? leaf({c.m, c.d}) : mul(randn({c.m, c.d}), 0.3).set_requires_grad(true);
    Tensor b = twin(a);
    Tensor lf = supcon(a, from_vector_i64(labels, {c.m}), c.t, c.nrm);
    Tensor lu = supcon_unfused(b, labels, c.t, c.nrm);
    EXPECT_NEAR(lf.item(), lu.item(), 2e-5 * std::abs(lu.item()) + 1e-6);
    lf.backward();
    lu.backward();
    expect_close(a.grad(), b.grad(), 2e-4, 1e-7, "dz");
  }
}

TEST(SupCon, NoPositiveAnywhereGivesZero) {
  Tensor z = leaf({5, 3});
  Tensor l = supcon(z, from_vector_i64({1, 2, 3, 4, 5}, {5}), 0.1);
  EXPECT_EQ(l.item(), 0.0);
  l.backward();
  for (double g : z.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
}

TEST(NtXentMulti, MatchesCompositionAndTwoViewsIsNtXent) {
  manual_seed(32);
  for (int64_t v : {2, 3, 6}) {
    for (int64_t n : {5, 70}) {
      SCOPED_TRACE("V=" + std::to_string(v) + " N=" + std::to_string(n));
      std::vector<Tensor> views, twins;
      std::vector<int64_t> labels;
      for (int64_t k = 0; k < v; ++k) {
        views.push_back(leaf({n, 19}));
        twins.push_back(twin(views.back()));
        for (int64_t s = 0; s < n; ++s) labels.push_back(s);
      }
      Tensor lf = nt_xent_multi(views, 0.2);
      Tensor lu = supcon_unfused(cat(twins, 0), labels, 0.2, true);
      EXPECT_NEAR(lf.item(), lu.item(), 2e-5 * std::abs(lu.item()));
      lf.backward();
      lu.backward();
      for (int64_t k = 0; k < v; ++k)
        expect_close(views[k].grad(), twins[k].grad(), 2e-4, 1e-7, "view " + std::to_string(k));
      if (v == 2) {
        Tensor c1 = twin(views[0]), c2 = twin(views[1]);
        Tensor l2 = nt_xent(c1, c2, 0.2);
        EXPECT_NEAR(l2.item(), lf.item(), 2e-6 * std::abs(lf.item()));
        l2.backward();
        expect_close(c1.grad(), views[0].grad(), 1e-5, 1e-8, "nt_xent dz1");
        expect_close(c2.grad(), views[1].grad(), 1e-5, 1e-8, "nt_xent dz2");
      }
    }
  }
}

// ---- CLIP ----

TEST(ClipLoss, MatchesCompositionF32) {
  manual_seed(33);
  struct C {
    int64_t n, d;
    double t;
    bool nrm;
  };
  for (C c :
       {C{1, 4, 0.1, true}, C{9, 5, 0.07, true}, C{300, 33, 0.1, true}, C{600, 16, 0.5, true}, C{40, 7, 0.5, false}}) {
    SCOPED_TRACE("N=" + std::to_string(c.n) + " D=" + std::to_string(c.d));
    Tensor a = c.nrm ? leaf({c.n, c.d}) : mul(randn({c.n, c.d}), 0.3).set_requires_grad(true);
    Tensor b = c.nrm ? leaf({c.n, c.d}) : mul(randn({c.n, c.d}), 0.3).set_requires_grad(true);
    Tensor a2 = twin(a), b2 = twin(b);
    Tensor lf = clip_loss(a, b, c.t, c.nrm);
    Tensor lu = clip_unfused(a2, b2, c.t, c.nrm);
    EXPECT_NEAR(lf.item(), lu.item(), 2e-5 * std::abs(lu.item()) + 1e-6);
    lf.backward();
    lu.backward();
    const double atol = c.n == 1 ? 1e-6 : 1e-7;  // N = 1: the loss is 0 for any input, the gradient rounding noise
    expect_close(a.grad(), a2.grad(), 2e-4, atol, "da");
    expect_close(b.grad(), b2.grad(), 2e-4, atol, "db");
  }
}

// ---- distributed (gathered) form ----

TEST(NtXentGathered, MatchesComposition) {
  manual_seed(34);
  struct C {
    int64_t n, world, rank, d;
  };
  for (C c : {C{3, 2, 1, 5}, C{70, 3, 1, 17}, C{150, 2, 0, 24}, C{129, 3, 2, 9}}) {
    SCOPED_TRACE("n=" + std::to_string(c.n) + " W=" + std::to_string(c.world) + " rank=" + std::to_string(c.rank));
    const int64_t m = c.n * c.world, off = c.rank * c.n;
    Tensor z1 = leaf({c.n, c.d}), z2 = leaf({c.n, c.d}), g1 = leaf({m, c.d}), g2 = leaf({m, c.d});
    Tensor y1 = twin(z1), y2 = twin(z2), h1 = twin(g1), h2 = twin(g2);
    Tensor lf = nt_xent_gathered(z1, z2, g1, g2, off, 0.1);
    Tensor lu = gathered_unfused(y1, y2, h1, h2, off, 0.1);
    EXPECT_NEAR(lf.item(), lu.item(), 2e-5 * std::abs(lu.item()));
    lf.backward();
    lu.backward();
    expect_close(z1.grad(), y1.grad(), 2e-4, 1e-7, "dz1");
    expect_close(z2.grad(), y2.grad(), 2e-4, 1e-7, "dz2");
    expect_close(g1.grad(), h1.grad(), 2e-4, 1e-7, "dg1");
    expect_close(g2.grad(), h2.grad(), 2e-4, 1e-7, "dg2");
  }
}

TEST(NtXentGathered, OneRankIsNtXent) {
  manual_seed(35);
  for (int64_t n : {4, 200}) {
    Tensor z1 = leaf({n, 16}), z2 = leaf({n, 16});
    Tensor y1 = twin(z1), y2 = twin(z2);
    Tensor lg = nt_xent_gathered(z1, z2, z1, z2, 0, 0.1);  // g = z: row and column gradients add up on z
    Tensor ln = nt_xent(y1, y2, 0.1);
    EXPECT_NEAR(lg.item(), ln.item(), 2e-6 * std::abs(ln.item()));
    lg.backward();
    ln.backward();
    expect_close(z1.grad(), y1.grad(), 2e-5, 1e-8, "total dz1");
    expect_close(z2.grad(), y2.grad(), 2e-5, 1e-8, "total dz2");
  }
}

// W ranks simulated in one process: rank r's local rows are rows [r n, (r + 1) n) of the global views and its
// gathered columns are the global views themselves, so autograd sums every rank's column gradients into
// the global leaves, as all_gather's backward does. The mean of the local losses is the global NT-Xent.
TEST(NtXentGathered, RanksTogetherAreTheGlobalLoss) {
  manual_seed(36);
  const int64_t n = 37, world = 3, d = 12;
  Tensor z1 = leaf({n * world, d}), z2 = leaf({n * world, d});
  Tensor y1 = twin(z1), y2 = twin(z2);
  Tensor total = zeros({});
  for (int64_t r = 0; r < world; ++r)
    total = add(total, nt_xent_gathered(z1.narrow(0, r * n, n), z2.narrow(0, r * n, n), z1, z2, r * n, 0.2));
  total = div(total, double(world));
  Tensor ref = nt_xent(y1, y2, 0.2);
  EXPECT_NEAR(total.item(), ref.item(), 2e-6 * std::abs(ref.item()));
  total.backward();
  ref.backward();
  expect_close(z1.grad(), y1.grad(), 2e-5, 1e-8, "dz1");
  expect_close(z2.grad(), y2.grad(), 2e-5, 1e-8, "dz2");
}

// ---- tiled kernels against the materializing references (f64, multi-tile) ----

Tensor normalized_f64(int64_t r, int64_t d) {
  Tensor x = randn({r, d}, DType::f64);
  Tensor z = empty({r, d}, DType::f64);
  kc::infonce_normalize_rows<double>(r, d, x.data<double>(), z.data<double>(), nullptr);
  return z;
}

double max_abs_diff(const std::vector<double>& a, const double* b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST(InfonceFormsKernel, TiledMatchesReference) {
  manual_seed(37);
  const double t = 0.2;
  {  // SupCon at M = 530 (3 row tiles, 3 column tiles)
    const int64_t M = 530, D = 7;
    Tensor z = normalized_f64(M, D);
    std::vector<int64_t> labels = random_labels(M, 60, 5);
    labels[3] = 123456;  // a singleton
    std::vector<double> lse(M), dz(M * D), dref(M * D);
    const double l = kc::supcon_forward<double>(M, D, t, z.data<double>(), labels.data(), lse.data());
    kc::supcon_backward<double>(M, D, t, 1.0, z.data<double>(), labels.data(), lse.data(), dz.data());
    const double lr = kc::supcon_ref(M, D, t, z.data<double>(), labels.data(), dref.data());
    EXPECT_NEAR(l, lr, 1e-12 * std::abs(lr));
    EXPECT_LE(max_abs_diff(dz, dref.data()), 1e-14);
  }
  {  // CLIP at N = 300
    const int64_t N = 300, D = 9;
    Tensor a = normalized_f64(N, D), b = normalized_f64(N, D);
    std::vector<double> la(N), lb(N), da(N * D), db(N * D), ra(N * D), rb(N * D);
    const double l = kc::clip_forward<double>(N, D, t, a.data<double>(), b.data<double>(), la.data(), lb.data());
    kc::clip_backward<double>(N, D, t, 1.0, a.data<double>(), b.data<double>(), la.data(), lb.data(), da.data(),
                              db.data());
    const double lr = kc::clip_ref(N, D, t, a.data<double>(), b.data<double>(), ra.data(), rb.data());
    EXPECT_NEAR(l, lr, 1e-12 * std::abs(lr));
    EXPECT_LE(max_abs_diff(da, ra.data()), 1e-14);
    EXPECT_LE(max_abs_diff(db, rb.data()), 1e-14);
  }
  {  // gathered: n = 140 local, W = 3 (2m = 840 columns), rank 2
    const int64_t n = 140, m = 420, off = 280, D = 6;
    Tensor x = normalized_f64(2 * n, D), g = normalized_f64(2 * m, D);
    std::vector<double> lse(2 * n), dx(2 * n * D), dg(2 * m * D), rx(2 * n * D), rg(2 * m * D);
    const double l =
        kc::infonce_gathered_forward<double>(n, m, off, D, t, x.data<double>(), g.data<double>(), lse.data());
    kc::infonce_gathered_backward<double>(n, m, off, D, t, 1.0, x.data<double>(), g.data<double>(), lse.data(),
                                          dx.data(), dg.data());
    const double lr =
        kc::infonce_gathered_ref(n, m, off, D, t, x.data<double>(), g.data<double>(), rx.data(), rg.data());
    EXPECT_NEAR(l, lr, 1e-12 * std::abs(lr));
    EXPECT_LE(max_abs_diff(dx, rx.data()), 1e-14);
    EXPECT_LE(max_abs_diff(dg, rg.data()), 1e-14);
  }
}

TEST(InfonceFormsKernel, SameResultOnAnyThreadCount) {
  manual_seed(38);
  Tensor z = leaf({600, 24}), a = leaf({300, 24}), b = leaf({300, 24});
  Tensor lab = from_vector_i64(random_labels(600, 40, 1), {600});
  auto run = [&](int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    z.set_grad(Tensor());
    a.set_grad(Tensor());
    Tensor l1 = supcon(z, lab, 0.1), l2 = clip_loss(a, b, 0.1);
    l1.backward();
    l2.backward();
    omp_set_num_threads(prev);
    std::vector<float> out = z.grad().to_vector<float>(), ga = a.grad().to_vector<float>();
    out.insert(out.end(), ga.begin(), ga.end());
    out.push_back(float(l1.item()));
    out.push_back(float(l2.item()));
    return out;
  };
  EXPECT_EQ(run(1), run(2));
}

// Tensors allocated during supcon forward + backward stay O(M D): far below one M x M f32 matrix.
TEST(InfonceFormsKernel, SupConNeverHoldsTheSquareMatrix) {
  const int64_t m = 2048, d = 16;
  Tensor z = leaf({m, d});
  Tensor lab = from_vector_i64(random_labels(m, 256, 2), {m});
  const size_t base = cpu_alloc_stats().allocated_bytes;
  cpu_reset_peak_stats();
  Tensor l = supcon(z, lab, 0.1);
  l.backward();
  const size_t peak = cpu_alloc_stats().peak_allocated_bytes - base;
  EXPECT_LT(peak, size_t(8 * m * d * 4)) << "tensors beyond O(M D): " << peak << " B";
}

// ---- bf16 inputs: computed in f32, the f32 result to bf16 tolerance ----

TEST(NtXentBf16, MatchesF32ToBf16Tolerance) {
  manual_seed(39);
  for (int64_t n : {16, 300}) {
    SCOPED_TRACE("N=" + std::to_string(n));
    // large magnitudes too: normalization and the logsumexp stay finite in f32 accumulation
    Tensor x1 = mul(randn({n, 64}), 30.0), x2 = mul(randn({n, 64}), 30.0);
    Tensor h1 = x1.to(DType::bf16).set_requires_grad(true), h2 = x2.to(DType::bf16).set_requires_grad(true);
    Tensor f1 = x1.clone().set_requires_grad(true), f2 = x2.clone().set_requires_grad(true);
    Tensor lh = nt_xent(h1, h2, 0.1), lf = nt_xent(f1, f2, 0.1);
    EXPECT_EQ(lh.dtype(), DType::f32);
    // bf16 keeps 8 bits of mantissa: inputs move by up to 2^-9 relative, logits (|s| <= 10) by about 0.04
    EXPECT_NEAR(lh.item(), lf.item(), 2e-2 * std::abs(lf.item()));
    lh.backward();
    lf.backward();
    EXPECT_EQ(h1.grad().dtype(), DType::bf16);
    expect_close(h1.grad(), f1.grad(), 5e-2, 0, "dz1");
    expect_close(h2.grad(), f2.grad(), 5e-2, 0, "dz2");
    // and exactly the f32 op applied to the bf16-rounded values (the only difference is the input rounding)
    Tensor r1 = h1.detach().to(DType::f32).set_requires_grad(true), r2 = h2.detach().to(DType::f32);
    Tensor lr = nt_xent(r1, r2, 0.1);
    EXPECT_EQ(lr.item(), lh.item());
  }
}

// ---- errors ----

TEST(InfonceFormsErrors, NameTheOpAndValues) {
  auto has = [](const std::function<void()>& f, const std::string& s) {
    const std::string e = error_of(f);
    EXPECT_NE(e.find(s), std::string::npos) << e;
  };
  Tensor a = randn({4, 8}), b = randn({5, 8});
  has([&] { supcon(a, from_vector_i64({0, 1, 0}, {3}), 0.1); },
      "supcon: labels must be an i64 vector of one label per row (4), got i64 [3]");
  has([&] { supcon(a, zeros({4}), 0.1); }, "supcon: labels must be an i64 vector");
  has([&] { nt_xent_multi({a}, 0.1); }, "nt_xent_multi: needs at least 2 views, got 1");
  has(
      [&] {
        nt_xent_multi({a, a, b}, 0.1);
      },
      "nt_xent_multi: all views must have the same shape, got view 0 [4, 8] and view 2 [5, 8]");
  has([&] { clip_loss(a, b, 0.1); },
      "clip_loss: the two modalities must have the same shape, got a [4, 8] and b [5, 8]");
  has([&] { clip_loss(a, a, -1.0); }, "clip_loss: temperature");
  has([&] { nt_xent_gathered(a, a, randn({8, 8}), randn({8, 8}), 5, 0.1); },
      "nt_xent_gathered: this rank's rows [5, 9) must lie within the gathered rows [0, 8)");
  has(
      [&] {
        nt_xent_gathered(a, a, randn({8, 7}), randn({8, 7}), 0, 0.1);
      },
      "nt_xent_gathered: gathered g1 [8, 7] must have the feature dim of z1 [4, 8]");
  has([&] { nt_xent_gathered(a, b, a, a, 0, 0.1); }, "nt_xent_gathered: the two local views must have the same shape");
}

}  // namespace
}  // namespace siam::test

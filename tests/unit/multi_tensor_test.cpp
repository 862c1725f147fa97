// Multi-tensor EMA / copy / SGD / LARS (kernels/cpu/multi_tensor.h, engine/optim/ema.h, sgd.h, lars.h) against
// per-tensor compositions of engine ops: ragged tensor sizes, chunks straddling tensor boundaries, momentum
// 0 and 1, BN buffers, thread-count independence and the error messages.
// GCC 12 reports a false -Wrestrict inside libstdc++ for "literal" + std::to_string(...) (GCC bug 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/core/random.h"
#include "engine/nn/batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/ema.h"
#include "engine/optim/lars.h"
#include "engine/optim/sgd.h"
#include "kernels/cpu/multi_tensor.h"
#include "models/resnet.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

namespace kc = kernels::cpu;

// Ragged sizes around the 64K chunk: tiny tensors sharing a chunk, an empty one, tensors straddling one or
// two chunk boundaries, one exactly a chunk long.
const std::vector<Shape> kRagged = {{3}, {64, 3, 3, 3}, {70001}, {0}, {5, 7}, {65536}, {2, 40000}, {1}, {129, 257}};

std::vector<Tensor> make_list(const std::vector<Shape>& shapes, DType dt = DType::f32) {
  std::vector<Tensor> out;
  for (const Shape& s : shapes) out.push_back(randn(s, dt));
  return out;
}
std::vector<Tensor> clone_list(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(t.clone());
  return out;
}

void expect_bitwise(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  EXPECT_EQ(std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(), a.nbytes()), 0) << what;
}

// max |a - b| <= rtol * max(|b|) (per tensor)
void expect_close(const Tensor& a, const Tensor& b, double rtol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    diff = std::max(diff, std::abs(va[i] - vb[i]));
    scale = std::max(scale, std::abs(vb[i]));
  }
  EXPECT_LE(diff, rtol * scale) << what << ": max diff " << diff << " of " << scale;
}

TEST(MultiTensorPlan, CoversEveryElementOnceAndStraddlesTensors) {
  std::vector<int64_t> numel;
  for (const Shape& s : kRagged) numel.push_back(shape_numel(s));
  for (int64_t chunk : {int64_t(7), int64_t(1000), kc::kMtChunkElems}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    kc::MtPlan plan = kc::mt_plan(numel.data(), int64_t(numel.size()), chunk);
    int64_t total = 0;
    for (int64_t n : numel) total += n;
    EXPECT_EQ(plan.total, total);
    EXPECT_EQ(plan.num_chunks(), (total + chunk - 1) / chunk);
    // segments walk the tensors in order, contiguously; each chunk holds exactly `chunk` elements but the last
    std::vector<int64_t> next(numel.size(), 0);
    bool straddles = false;
    for (int64_t c = 0; c < plan.num_chunks(); ++c) {
      int64_t in_chunk = 0;
      for (int64_t s = plan.chunk_begin[c]; s < plan.chunk_begin[c + 1]; ++s) {
        const kc::MtSegment& sg = plan.segments[s];
        ASSERT_GT(sg.len, 0);
        ASSERT_EQ(sg.offset, next[sg.tensor]);
        next[sg.tensor] += sg.len;
        ASSERT_LE(next[sg.tensor], numel[sg.tensor]);
        in_chunk += sg.len;
      }
      straddles |= plan.chunk_begin[c + 1] - plan.chunk_begin[c] > 1;
      EXPECT_EQ(in_chunk, c + 1 < plan.num_chunks() ? chunk : total - c * chunk);
    }
    EXPECT_EQ(next, numel);
    EXPECT_TRUE(straddles);
  }
  int64_t none = 0;
  EXPECT_EQ(kc::mt_plan(&none, 1).num_chunks(), 0);
}

TEST(MultiTensorEma, MatchesPerTensorComposition) {
  manual_seed(21);
  for (DType dt : {DType::f32, DType::f64}) {
    for (double m : {0.996, 0.5, 0.9999}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " m=" + std::to_string(m));
      std::vector<Tensor> online = make_list(kRagged, dt), target = make_list(kRagged, dt);
      std::vector<Tensor> ref = clone_list(target);
      optim::ema_update(target, online, m);
      for (size_t i = 0; i < ref.size(); ++i) {
        ref[i].mul_(m).add_(online[i], 1.0 - m);
        // one rounding of difference at most (the fused form may contract to an FMA)
        expect_close(target[i], ref[i], dt == DType::f32 ? 3e-7 : 1e-15, "tensor " + std::to_string(i));
      }
    }
  }
}

TEST(MultiTensorEma, MomentumOneKeepsAndZeroCopiesExactly) {
  manual_seed(22);
  std::vector<Tensor> online = make_list(kRagged), target = make_list(kRagged);
  std::vector<Tensor> before = clone_list(target);
  optim::ema_update(target, online, 1.0);
  for (size_t i = 0; i < target.size(); ++i) expect_bitwise(target[i], before[i], "m=1 tensor " + std::to_string(i));
  optim::ema_update(target, online, 0.0);
  for (size_t i = 0; i < target.size(); ++i) expect_bitwise(target[i], online[i], "m=0 tensor " + std::to_string(i));
}

TEST(MultiTensorEma, SameResultOnAnyThreadCount) {
  manual_seed(23);
  std::vector<Tensor> online = make_list(kRagged), t1 = make_list(kRagged);
  std::vector<Tensor> t2 = clone_list(t1);
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  optim::ema_update(t1, online, 0.99);
  omp_set_num_threads(2);
  optim::ema_update(t2, online, 0.99);
  omp_set_num_threads(prev);
  for (size_t i = 0; i < t1.size(); ++i) expect_bitwise(t1[i], t2[i], "tensor " + std::to_string(i));
}

// BYOL / MoCo pass the BN buffers too: running statistics are averaged, num_batches_tracked (i64) is copied.
TEST(MultiTensorEma, BatchNormBuffers) {
  manual_seed(24);
  nn::BatchNorm2d online(6), target(6);
  online.train();
  online.forward(add(mul(randn({4, 6, 3, 3}), 2.0), 1.0));
  online.forward(randn({4, 6, 3, 3}));
  std::vector<Tensor> ob = online.buffers(), tb = target.buffers();
  ASSERT_EQ(ob.size(), 3u);
  std::vector<Tensor> ref = clone_list(tb);
  optim::ema_update(tb, ob, 0.9);
  for (size_t i = 0; i < tb.size(); ++i) {
    if (tb[i].dtype() == DType::i64) {
      EXPECT_EQ(tb[i].item(), 2.0);
      continue;
    }
    ref[i].mul_(0.9).add_(ob[i], 0.1);
    expect_close(tb[i], ref[i], 3e-7, "buffer " + std::to_string(i));
  }
  // the parameters after the buffers: each moves halfway to the online one
  std::vector<Tensor> tp = target.parameters(), op = online.parameters();
  {
    NoGradGuard no_grad;  // the two encoders start equal (weight 1, bias 0): move the online one
    for (Tensor& p : op) p.add_(randn(p.shape()));
  }
  std::vector<Tensor> pref = clone_list(tp);
  optim::ema_update(tp, op, 0.5);
  NoGradGuard no_grad;
  for (size_t i = 0; i < tp.size(); ++i) {
    pref[i].mul_(0.5).add_(op[i], 0.5);
    expect_close(tp[i], pref[i], 3e-7, "parameter " + std::to_string(i));
  }
}

TEST(MultiTensorEma, CopyParamsInitialisesAMomentumEncoder) {
  manual_seed(25);
  models::ResNetConfig cfg;
  cfg.depth = 18;
  cfg.width = 4;
  cfg.stem = models::Stem::cifar;
  models::ResNet online(cfg), target(cfg);
  std::vector<Tensor> op = online.parameters(), tp = target.parameters();
  optim::copy_params(tp, op);
  optim::copy_params(target.buffers(), online.buffers());
  for (size_t i = 0; i < tp.size(); ++i) expect_bitwise(tp[i], op[i], "parameter " + std::to_string(i));
  // then an EMA step over the whole encoder against the per-tensor composition
  std::vector<Tensor> ref;
  for (const Tensor& t : tp) ref.push_back(t.detach().clone());
  {
    NoGradGuard ng;
    for (Tensor& p : op) p.add_(randn(p.shape()), 0.1);
  }
  optim::ema_update(tp, op, 0.99);
  for (size_t i = 0; i < tp.size(); ++i) {
    ref[i].mul_(0.99).add_(op[i].detach(), 0.01);
    expect_close(tp[i], ref[i], 3e-7, "parameter " + std::to_string(i));
  }
}

TEST(MultiTensorEma, RecordsNoAutograd) {
  Tensor t = randn({5}).set_requires_grad(true), o = randn({5}).set_requires_grad(true);
  Tensor o2 = mul(o, 2.0);  // a non-leaf online tensor
  optim::ema_update({t}, {o2}, 0.5);
  EXPECT_TRUE(t.is_leaf());
  EXPECT_FALSE(t.grad().defined());
  // a non-contiguous online tensor is read through a contiguous copy
  Tensor a = randn({3, 4}), b = randn({4, 3});
  Tensor ref = a.clone();
  optim::ema_update({a}, {b.t()}, 0.25);
  ref.mul_(0.25).add_(b.t(), 0.75);
  expect_close(a, ref, 3e-7, "non-contiguous online");
}

TEST(MultiTensorEma, CosineMomentum) {
  EXPECT_DOUBLE_EQ(optim::cosine_momentum(0.996, 0, 100), 0.996);
  EXPECT_NEAR(optim::cosine_momentum(0.996, 50, 100), 0.998, 1e-15);
  EXPECT_NEAR(optim::cosine_momentum(0.99, 25, 100), 1 - 0.01 * (std::cos(M_PI / 4) + 1) / 2, 1e-15);
  EXPECT_DOUBLE_EQ(optim::cosine_momentum(0.996, 100, 100), 1.0);
  EXPECT_DOUBLE_EQ(optim::cosine_momentum(0.996, 150, 100), 1.0);
  EXPECT_NE(error_of([] { optim::cosine_momentum(0.9, 1, 0); }).find("total steps must be positive, got 0"),
            std::string::npos);
}

TEST(MultiTensorEma, Errors) {
  auto has = [](const std::function<void()>& f, const std::string& s) {
    const std::string e = error_of(f);
    EXPECT_NE(e.find(s), std::string::npos) << e;
  };
  Tensor a = randn({2, 3}), b = randn({3, 2}), c = randn({2, 3}, DType::f64);
  has([&] { optim::ema_update({a, a}, {a}, 0.9); }, "optim::ema_update: target has 2 tensors but online has 1");
  has(
      [&] {
        optim::ema_update({a, a}, {a, b}, 0.9);
      },
      "optim::ema_update: tensor 1 has shape [2, 3] in target but [3, 2] in online");
  has([&] { optim::copy_params({a}, {c}); },
      "optim::copy_params: tensor 0 is f32 [2, 3] in target but f64 [2, 3] in online");
  has([&] { optim::ema_update({a}, {a}, 1.5); }, "momentum must be in [0, 1], got 1.5");
  has([&] { optim::ema_update({b.t()}, {a}, 0.5); }, "target tensor 0 [2, 3] is not contiguous");
  has([&] { optim::ema_update({a.to(DType::bf16)}, {a.to(DType::bf16)}, 0.5); }, "tensor 0 [2, 3] is bf16");
}

// ---- optimizers: the fused step against the per-tensor formulas through engine ops ----

struct SgdRef {
  double lr, wd, mom, damp;
  bool nesterov;
  std::vector<Tensor> buf;
  void step(std::vector<Tensor>& ps, const std::vector<Tensor>& gs) {
    NoGradGuard ng;
    buf.resize(ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      if (!gs[i].defined()) continue;
      Tensor d = wd != 0 ? add(gs[i], mul(ps[i], wd)) : gs[i];
      if (mom != 0) {
        if (!buf[i].defined())
          buf[i] = d.clone();
        else
          buf[i].mul_(mom).add_(d, 1.0 - damp);
        d = nesterov ? add(d, mul(buf[i], mom)) : buf[i];
      }
      ps[i].add_(d, -lr);
    }
  }
};

std::vector<Tensor> leaves(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(t.clone().set_requires_grad(true));
  return out;
}

TEST(MultiTensorSgd, MatchesPerTensorFormulas) {
  manual_seed(26);
  struct C {
    double wd, mom, damp;
    bool nest;
  };
  for (C c : {C{0, 0, 0, false}, C{1e-4, 0.9, 0, false}, C{5e-4, 0.9, 0, true}, C{0.01, 0.8, 0.3, false}}) {
    SCOPED_TRACE("wd=" + std::to_string(c.wd) + " mom=" + std::to_string(c.mom) + " damp=" + std::to_string(c.damp) +
                 (c.nest ? " nesterov" : ""));
    std::vector<Tensor> init = make_list(kRagged);
    std::vector<Tensor> ps = leaves(init), rs = clone_list(init);
    optim::SGD opt(ps, {.lr = 0.05, .momentum = c.mom, .dampening = c.damp, .weight_decay = c.wd, .nesterov = c.nest});
    SgdRef ref{0.05, c.wd, c.mom, c.damp, c.nest, {}};
    for (int step = 0; step < 3; ++step) {
      std::vector<Tensor> gs = make_list(kRagged);
      if (step == 1) gs[2] = Tensor();  // a parameter without a gradient this step (its buffer starts later)
      for (size_t i = 0; i < ps.size(); ++i) ps[i].set_grad(gs[i]);
      opt.step();
      ref.step(rs, gs);
      for (size_t i = 0; i < ps.size(); ++i)
        expect_close(ps[i], rs[i], 1e-6, "step " + std::to_string(step) + " p" + std::to_string(i));
    }
  }
}

struct LarsRef {
  double lr, wd, mom, eta;
  bool nesterov, clip, exclude;
  std::vector<Tensor> v;
  void step(std::vector<Tensor>& ps, const std::vector<Tensor>& gs) {
    NoGradGuard ng;
    v.resize(ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      Tensor d = gs[i];
      double slr = lr;
      if (!exclude) {
        if (wd != 0) d = add(gs[i], mul(ps[i], wd));
        const double pn = optim::l2_norm(ps[i]), dn = optim::l2_norm(d);
        const double trust = pn > 0 && dn > 0 ? eta * pn / dn : 1.0;
        slr = clip ? std::min(trust, lr) : lr * trust;
      }
      if (mom == 0) {
        ps[i].add_(d, -slr);
        continue;
      }
      if (!v[i].defined()) v[i] = zeros_like(ps[i]);
      v[i].mul_(mom).add_(d, slr);
      if (nesterov) {
        ps[i].add_(v[i], -mom);
        ps[i].add_(d, -slr);
      } else {
        ps[i].add_(v[i], -1.0);
      }
    }
  }
};

TEST(MultiTensorLars, MatchesPerTensorFormulas) {
  manual_seed(27);
  struct C {
    double wd, mom;
    bool nest, clip, exclude;
  };
  for (C c : {C{1e-4, 0.9, false, false, false}, C{1e-3, 0.9, true, false, false}, C{1e-4, 0.9, false, true, false},
              C{0.1, 0.0, false, false, false}, C{1e-4, 0.9, false, false, true}}) {
    SCOPED_TRACE("wd=" + std::to_string(c.wd) + " mom=" + std::to_string(c.mom) + (c.nest ? " nesterov" : "") +
                 (c.clip ? " clip" : "") + (c.exclude ? " exclude" : ""));
    std::vector<Tensor> init = make_list(kRagged);
    init[4].zero_();  // ||p|| = 0: trust ratio 1
    std::vector<Tensor> ps = leaves(init), rs = clone_list(init);
    optim::ParamGroupSpec spec{.name = "g", .params = ps, .lars_exclude = c.exclude};
    optim::LARS opt({spec}, {.lr = 0.3, .momentum = c.mom, .weight_decay = c.wd, .eta = 0.02, .nesterov = c.nest,
                             .clip_lr = c.clip});
    LarsRef ref{0.3, c.wd, c.mom, 0.02, c.nest, c.clip, c.exclude, {}};
    for (int step = 0; step < 3; ++step) {
      std::vector<Tensor> gs = make_list(kRagged);
      for (size_t i = 0; i < ps.size(); ++i) ps[i].set_grad(gs[i]);
      opt.step();
      ref.step(rs, gs);
      for (size_t i = 0; i < ps.size(); ++i)
        expect_close(ps[i], rs[i], 1e-6, "step " + std::to_string(step) + " p" + std::to_string(i));
    }
  }
}

TEST(MultiTensorLars, NormsDoNotDependOnThreads) {
  manual_seed(28);
  std::vector<Tensor> ps = make_list(kRagged), gs = make_list(kRagged);
  std::vector<int64_t> numel;
  std::vector<const float*> pp, gp;
  for (size_t i = 0; i < ps.size(); ++i) {
    numel.push_back(ps[i].numel());
    pp.push_back(ps[i].data<float>());
    gp.push_back(gs[i].data<float>());
  }
  kc::MtPlan plan = kc::mt_plan(numel.data(), int64_t(numel.size()));
  auto run = [&](int threads) {
    std::vector<double> a(ps.size(), 0.0), b(ps.size(), 0.0);
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    kc::mt_lars_norms<float>(plan, 0.01, pp.data(), gp.data(), a.data(), b.data());
    omp_set_num_threads(prev);
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  std::vector<double> r1 = run(1), r2 = run(2);
  EXPECT_EQ(r1, r2);
  for (size_t i = 0; i < ps.size(); ++i) {
    const double pn = optim::l2_norm(ps[i]);
    EXPECT_NEAR(std::sqrt(r1[i]), pn, 1e-6 * pn + 1e-12) << i;
  }
}

// A mixed-dtype group and a non-contiguous parameter (updated one at a time) in the same step.
TEST(MultiTensorSgd, MixedDtypesAndFallback) {
  manual_seed(29);
  Tensor a = randn({70000}).set_requires_grad(true), b = randn({3, 5}, DType::f64).set_requires_grad(true);
  Tensor base = randn({5, 4});
  Tensor c = make_view(base, {4, 5}, {1, 4}, 0).set_requires_grad(true);  // a non-contiguous leaf
  std::vector<Tensor> ps = {a, b, c};
  std::vector<Tensor> rs = clone_list(ps);
  optim::SGD opt(ps, {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3});
  SgdRef ref{0.1, 1e-3, 0.9, 0, false, {}};
  for (int step = 0; step < 2; ++step) {
    std::vector<Tensor> gs = {randn({70000}), randn({3, 5}, DType::f64), randn({4, 5})};
    for (size_t i = 0; i < ps.size(); ++i) ps[i].set_grad(gs[i]);
    opt.step();
    ref.step(rs, gs);
    for (size_t i = 0; i < ps.size(); ++i) expect_close(ps[i], rs[i], 1e-6, "parameter " + std::to_string(i));
  }
}

}  // namespace
}  // namespace siam::test

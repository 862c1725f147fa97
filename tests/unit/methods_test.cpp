// Every method's loss and parameter gradients on fixed inputs against a reference written from primitive
// engine ops (normalize, matmul, log_softmax, gather, ...), their state updates (EMA targets, queues,
// frozen prototypes), and a short training run on a fixed synthetic batch in which the loss falls.
// (methods/*.h)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/core/random.h"
#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/ops/whiten.h"
#include "engine/optim/ema.h"
#include "engine/optim/sgd.h"
#include "methods/method.h"
#include "methods/moco.h"
#include "methods/swav.h"
#include "tests/unit/test_util.h"

namespace siam {
namespace {

using methods::Method;
using methods::MethodOptions;

using test::tiny_resnet;

// whiten_size 16 == the batch of most tests here: one sub-batch
MethodOptions small(const std::string& name) { return test::tiny_method_options(name); }

std::vector<Tensor> random_views(int64_t b, int64_t n = 2, int64_t hw = 8) {
  std::vector<Tensor> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(randn({b, 3, hw, hw}));
  return v;
}

// head(encoder(...)) one view at a time (method.per_view_forward: BYOL, SimSiam, W-MSE).
std::vector<Tensor> ref_embed_per_view(nn::Module& enc, nn::Module& head, const std::vector<Tensor>& views) {
  std::vector<Tensor> z;
  for (const auto& v : views) z.push_back(head(enc(v)));
  return z;
}

// head(encoder(...)) as Method::encode + project do it: views of one size through the encoder together.
std::vector<Tensor> ref_embed(nn::Module& enc, nn::Module& head, const std::vector<Tensor>& views) {
  Tensor z = head(enc(cat(views, 0)));
  return chunk(z, static_cast<int64_t>(views.size()), 0);
}

// Compares the losses and the gradients of every trainable parameter of `m` between m.loss() and `ref`.
void expect_same_loss_and_grads(Method& m, const std::vector<Tensor>& views, const std::function<Tensor()>& ref,
                                double rtol = 2e-4) {
  methods::StepInfo info{.step = 0, .total_steps = 10};
  auto params = m.trainable_parameters();
  m.zero_grad();
  Tensor l = m.loss(views, info).loss;
  l.backward();
  std::vector<Tensor> g1;
  for (auto& [n, p] : params) g1.push_back(p.grad().defined() ? p.grad().clone() : zeros_like(p));
  m.zero_grad();
  Tensor r = ref();
  r.backward();
  EXPECT_NEAR(l.item(), r.item(), rtol * (1 + std::abs(r.item()))) << m.type_name();
  // Normwise relative error per parameter, against at least 1% of the largest gradient norm: the bias of a
  // Linear layer that a batch norm follows has a true gradient of zero, and rounding noise / zero is no signal.
  std::vector<Tensor> g2s;
  double scale = 0;
  for (auto& [n, p] : params) {
    g2s.push_back(p.grad().defined() ? p.grad() : zeros_like(p));
    scale = std::max(scale, std::sqrt(sum(square(g2s.back())).item()));
  }
  double worst = 0;
  std::string worst_name;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& g2 = g2s[i];
    double num = std::sqrt(sum(square(sub(g1[i], g2))).item());
    double den = std::max(std::sqrt(sum(square(g2)).item()), 1e-2 * scale) + 1e-12;
    if (num / den > worst) {
      worst = num / den;
      worst_name = params[i].first;
    }
  }
  EXPECT_LT(worst, 2e-3) << m.type_name() << ": worst gradient " << worst_name;
}

Tensor nt_xent_ref(const Tensor& z0, const Tensor& z1, double t) {
  const int64_t b = z0.size(0);
  Tensor z = normalize(cat({z0, z1}, 0), 1);  // (2B, D)
  Tensor s = div(matmul(z, z.t()), t);
  s = add(s, mul(eye(2 * b), -1e9));  // self-similarity masked
  std::vector<int64_t> pos(static_cast<size_t>(2 * b));
  for (int64_t i = 0; i < 2 * b; ++i) pos[static_cast<size_t>(i)] = (i + b) % (2 * b);
  return neg(mean(gather(log_softmax(s, 1), 1, from_vector_i64(pos, {2 * b, 1}))));
}

TEST(Methods, SimCLRMatchesPrimitiveNtXent) {
  manual_seed(1);
  auto m = methods::make_method(small("simclr"), tiny_resnet());
  auto v = random_views(8);
  expect_same_loss_and_grads(*m, v, [&] {
    auto z = ref_embed(m->module("encoder"), m->module("projector"), v);
    return nt_xent_ref(z[0], z[1], m->options().temperature);
  });
}

TEST(Methods, MoCoMatchesPrimitiveInfoNceAndUpdatesQueueAndKeys) {
  manual_seed(2);
  MethodOptions o = small("moco");
  o.shuffle_bn_groups = 1;  // one group: the key batch's BN statistics do not depend on the shuffle
  auto m = methods::make_method(o, tiny_resnet());
  auto* moco = dynamic_cast<methods::MoCo*>(m.get());
  auto v = random_views(8);
  Tensor queue0 = moco->queue().clone();
  expect_same_loss_and_grads(*m, v, [&] {
    auto q = ref_embed(m->module("encoder"), m->module("projector"), v);
    std::vector<Tensor> k;
    {
      NoGradGuard ng;
      k = ref_embed(m->module("key_encoder"), m->module("key_projector"), v);
    }
    auto one = [&](const Tensor& qq, const Tensor& kk) {
      Tensor qn = normalize(qq, 1), kn = normalize(kk, 1), qu = normalize(queue0, 1);
      Tensor lpos = sum(mul(qn, kn), {1}, true);  // (B, 1)
      Tensor logits = div(cat({lpos, matmul(qn, qu.t())}, 1), o.temperature);
      return cross_entropy(logits, zeros({qq.size(0)}, DType::i64));
    };
    return mul(add(one(q[0], k[1]), one(q[1], k[0])), 0.5);
  });
  // After the step: the 2B keys enter the queue at its start, and the key encoder moves toward the online one.
  Tensor key_w0 = m->module("key_encoder").param("conv1.weight").clone();
  std::vector<Tensor> trainable;
  for (auto& [n, p] : m->trainable_parameters()) trainable.push_back(p);
  optim::SGD sgd(trainable, {.lr = 0.1});
  sgd.step();
  m->after_optimizer_step({});
  Tensor on = m->module("encoder").param("conv1.weight"), key = m->module("key_encoder").param("conv1.weight");
  Tensor expect = add(mul(key_w0, o.momentum), mul(on, 1 - o.momentum));
  EXPECT_LT(max(abs(sub(key, expect))).item(), 1e-6);
  EXPECT_GT(max(abs(sub(moco->queue().narrow(0, 0, 16), queue0.narrow(0, 0, 16)))).item(), 1e-3);
  EXPECT_EQ(max(abs(sub(moco->queue().narrow(0, 16, 4), queue0.narrow(0, 16, 4)))).item(), 0.0);
  EXPECT_EQ(m->state_dict().size(), m->named_parameters().size() + m->named_buffers().size());
}

// Gradient accumulation (train.accumulate) calls loss once per micro-batch before one optimizer step: the keys
// of every micro-batch enter MoCo's queue, and SwAV's queue takes every micro-batch's embeddings.
TEST(Methods, QueuesTakeEveryMicroBatchOfAnAccumulatedStep) {
  manual_seed(4);
  MethodOptions o = small("moco");
  o.queue_size = 40;
  auto m = methods::make_method(o, tiny_resnet());
  auto* moco = dynamic_cast<methods::MoCo*>(m.get());
  Tensor queue0 = moco->queue().clone();
  auto a = random_views(4), b = random_views(4);
  m->loss(a, {});
  m->loss(b, {});
  m->after_optimizer_step({});
  // 2 micro-batches x 2 views x 4 keys: rows 0..15 replaced, the rest untouched
  EXPECT_GT(max(abs(sub(moco->queue().narrow(0, 12, 4), queue0.narrow(0, 12, 4)))).item(), 1e-3);
  EXPECT_EQ(max(abs(sub(moco->queue().narrow(0, 16, 24), queue0.narrow(0, 16, 24)))).item(), 0.0);
  int found = 0;
  for (auto& [n, t] : m->named_buffers()) {
    if (n.find("queue_ptr") == std::string::npos) continue;
    EXPECT_EQ(t.item(), 16.0);
    ++found;
  }
  EXPECT_EQ(found, 1);

  // SwAV's queue keeps the newest embeddings first: after micro-batches a then b, b's lead, as a step on b alone
  // (same weights) puts them
  MethodOptions s = small("swav");
  s.swav_queue = 24;
  auto swav_queue = [](methods::Method& m) -> Tensor {
    for (auto& [n, t] : m.named_buffers())
      if (n == "queue") return t;
    return Tensor();
  };
  manual_seed(5);
  auto sw = methods::make_method(s, tiny_resnet());
  manual_seed(5);
  auto only_b = methods::make_method(s, tiny_resnet());
  sw->loss(a, {});
  sw->loss(b, {});
  sw->after_optimizer_step({});
  only_b->loss(b, {});
  only_b->after_optimizer_step({});
  found = 0;
  for (auto& [n, t] : sw->named_buffers()) {
    if (n.find("queue_fill") == std::string::npos) continue;
    EXPECT_EQ(t.item(), 8.0) << "2 micro-batches of 4";
    ++found;
  }
  EXPECT_EQ(found, 1);
  Tensor q2 = swav_queue(*sw), q1 = swav_queue(*only_b);
  ASSERT_TRUE(q2.defined() && q1.defined());
  EXPECT_EQ(q2.narrow(1, 0, 4).to_vector<float>(), q1.narrow(1, 0, 4).to_vector<float>()) << "b's rows lead";
}

TEST(Methods, BYOLMatchesPrimitiveCosineLossAndFollowsTheMomentumSchedule) {
  manual_seed(3);
  auto m = methods::make_method(small("byol"), tiny_resnet());
  auto v = random_views(8);
  expect_same_loss_and_grads(*m, v, [&] {
    // One forward per view (BYOL's reference code): batch norm never mixes the two views.
    auto z = ref_embed_per_view(m->module("encoder"), m->module("projector"), v);
    std::vector<Tensor> ps = {m->module("predictor")(z[0]), m->module("predictor")(z[1])};
    std::vector<Tensor> t;
    {
      NoGradGuard ng;
      t = ref_embed_per_view(m->module("target_encoder"), m->module("target_projector"), v);
    }
    auto d = [](const Tensor& a, const Tensor& b) { return mean(rsub(2.0, mul(cosine_similarity(a, b), 2.0))); };
    return add(d(ps[0], t[1]), d(ps[1], t[0]));
  });
  // Target parameters have no gradient and are not trainable.
  for (auto& [n, p] : m->trainable_parameters()) EXPECT_EQ(n.rfind("target_", 0), std::string::npos) << n;
  // tau(k) = 1 - (1 - 0.99) (cos(pi k / K) + 1) / 2
  EXPECT_NEAR(optim::cosine_momentum(0.99, 5, 10), 0.995, 1e-12);
}

TEST(Methods, SimSiamMatchesPrimitiveNegativeCosineWithStopGradient) {
  manual_seed(4);
  auto m = methods::make_method(small("simsiam"), tiny_resnet());
  auto v = random_views(8);
  expect_same_loss_and_grads(*m, v, [&] {
    auto z = ref_embed_per_view(m->module("encoder"), m->module("projector"), v);
    std::vector<Tensor> p = {m->module("predictor")(z[0]), m->module("predictor")(z[1])};
    Tensor a = neg(mean(cosine_similarity(p[0], z[1].detach())));
    Tensor b = neg(mean(cosine_similarity(p[1], z[0].detach())));
    return mul(add(a, b), 0.5);
  });
  // per_view_forward false: the views share every forward (and every batch-norm statistic).
  methods::MethodOptions o = small("simsiam");
  o.per_view_forward = false;
  manual_seed(4);
  auto shared = methods::make_method(o, tiny_resnet());
  expect_same_loss_and_grads(*shared, v, [&] {
    auto z = ref_embed(shared->module("encoder"), shared->module("projector"), v);
    auto p = chunk(shared->module("predictor")(cat(z, 0)), 2, 0);
    Tensor a = neg(mean(cosine_similarity(p[0], z[1].detach())));
    Tensor b = neg(mean(cosine_similarity(p[1], z[0].detach())));
    return mul(add(a, b), 0.5);
  });
}

Tensor standardize(const Tensor& z, double eps) {
  Tensor mu = mean(z, {0}, true);
  Tensor var0 = mean(square(sub(z, mu)), {0}, true);
  return div(sub(z, mu), sqrt(add(var0, eps)));
}

TEST(Methods, BarlowTwinsMatchesPrimitiveCrossCorrelation) {
  manual_seed(5);
  auto m = methods::make_method(small("barlow_twins"), tiny_resnet());
  auto v = random_views(8);
  expect_same_loss_and_grads(*m, v, [&] {
    auto z = ref_embed(m->module("encoder"), m->module("projector"), v);
    const int64_t n = z[0].size(0), d = z[0].size(1);
    Tensor c = div(matmul(standardize(z[0], 1e-5).t(), standardize(z[1], 1e-5)), static_cast<double>(n));
    Tensor id = eye(d);
    Tensor on = sum(square(mul(sub(id, c), id)));
    Tensor off = sum(square(mul(c, rsub(1.0, id))));
    return add(on, mul(off, m->options().lambda));
  });
}

TEST(Methods, VICRegMatchesPrimitiveTerms) {
  manual_seed(6);
  auto m = methods::make_method(small("vicreg"), tiny_resnet());
  auto v = random_views(8);
  expect_same_loss_and_grads(*m, v, [&] {
    auto z = ref_embed(m->module("encoder"), m->module("projector"), v);
    const int64_t n = z[0].size(0), d = z[0].size(1);
    Tensor inv = mse_loss(z[0], z[1]);
    auto var_term = [&](const Tensor& x) { return mean(relu(rsub(1.0, sqrt(add(var(x, {0}, 1), 1e-4))))); };
    auto cov_term = [&](const Tensor& x) {
      Tensor xc = sub(x, mean(x, {0}, true));
      Tensor cov = div(matmul(xc.t(), xc), static_cast<double>(n - 1));
      return div(sum(square(mul(cov, rsub(1.0, eye(d))))), static_cast<double>(d));
    };
    Tensor vt = mul(add(var_term(z[0]), var_term(z[1])), 0.5);
    Tensor ct = add(cov_term(z[0]), cov_term(z[1]));
    return add(add(mul(inv, 25.0), mul(vt, 25.0)), ct);
  });
}

TEST(Methods, WMSEMatchesWhitenedNormalizedMse) {
  manual_seed(7);
  auto m = methods::make_method(small("wmse"), tiny_resnet());
  auto v = random_views(16);
  expect_same_loss_and_grads(*m, v, [&] {
    auto z = ref_embed_per_view(m->module("encoder"), m->module("projector"), v);  // W-MSE's default
    Tensor w0 = whiten(z[0]), w1 = whiten(z[1]);
    return mean(rsub(2.0, mul(cosine_similarity(w0, w1), 2.0)));
  });
  std::string e = test::error_of([&] { m->loss(random_views(12), {}); });
  EXPECT_NE(e.find("multiple of method.whiten_size"), std::string::npos) << e;
}

// method.whiten_iters repeats the random split and averages over every sub-batch term of every repeat. With
// one sub-batch per view (whiten_size = the batch) each repeat whitens the same rows in another order, and
// whitening and the paired rows' loss do not depend on the order: 3 repeats give 1 repeat's loss and gradients.
// With two sub-batches the splits differ, and so does the loss.
TEST(Methods, WMSERepeatsAverageOverTheirSplits) {
  auto run = [](int64_t size, int iters) {
    manual_seed(9);
    MethodOptions o = small("wmse");
    o.whiten_size = size;
    o.whiten_iters = iters;
    auto m = methods::make_method(o, tiny_resnet());
    manual_seed(10);
    auto v = random_views(32);
    m->zero_grad();
    Tensor l = m->loss(v, {.step = 2, .total_steps = 5}).loss;
    l.backward();
    return std::make_pair(l.item(), m->module("projector").parameters()[0].grad().clone());
  };
  auto one = run(32, 1), three = run(32, 3);
  EXPECT_NEAR(three.first, one.first, 1e-5 * std::abs(one.first));
  test::expect_close(three.second, one.second, 1e-4, 1e-7, "projector gradient, 3 repeats vs 1");
  auto halves1 = run(16, 1), halves3 = run(16, 3);
  EXPECT_TRUE(std::isfinite(halves3.first));
  EXPECT_GT(std::abs(halves3.first - halves1.first), 1e-4) << "3 random splits into halves gave 1 split's loss";
}

// Sinkhorn from primitive ops (SwAV's distributed_sinkhorn on one process).
Tensor sinkhorn_ref(const Tensor& s, double eps, int iters) {
  const double b = static_cast<double>(s.size(0)), k = static_cast<double>(s.size(1));
  Tensor q = exp(div(s, eps)).t();  // (K, B)
  q = div(q, sum(q));
  for (int i = 0; i < iters; ++i) {
    q = div(div(q, sum(q, {1}, true)), k);
    q = div(div(q, sum(q, {0}, true)), b);
  }
  return mul(q, b).t();
}

TEST(Methods, SwAVMatchesPrimitiveSwappedPredictionWithMultiCrop) {
  manual_seed(8);
  auto m = methods::make_method(small("swav"), tiny_resnet());
  auto v = random_views(8, 2, 8);
  auto small_views = random_views(8, 2, 4);
  v.insert(v.end(), small_views.begin(), small_views.end());
  // The method normalizes the prototypes first; do it here too so the reference sees the same weights.
  dynamic_cast<methods::SwAV*>(m.get())->prototypes().normalize_();
  expect_same_loss_and_grads(
      *m, v,
      [&] {
        nn::Module& enc = m->module("encoder");
        auto big = chunk(enc(cat({v[0], v[1]}, 0)), 2, 0);
        auto sml = chunk(enc(cat({v[2], v[3]}, 0)), 2, 0);
        auto z = chunk(m->module("projector")(cat({big[0], big[1], sml[0], sml[1]}, 0)), 4, 0);
        const Tensor& w = m->module("prototypes").param("weight");
        std::vector<Tensor> s;
        for (auto& zv : z) s.push_back(matmul(normalize(zv, 1), w.t()));
        Tensor total;
        for (int g = 0; g < 2; ++g) {
          Tensor q;
          {
            NoGradGuard ng;
            q = sinkhorn_ref(s[static_cast<size_t>(g)].detach(), 0.05, 3);
          }
          for (int u = 0; u < 4; ++u) {
            if (u == g) continue;
            Tensor l = neg(mean(sum(mul(q, log_softmax(div(s[static_cast<size_t>(u)], 0.1), 1)), {1})));
            total = total.defined() ? add(total, l) : l;
          }
        }
        return div(total, 6.0);
      },
      1e-3);
}

TEST(Methods, SwAVFreezesPrototypesForTheFirstSteps) {
  manual_seed(9);
  MethodOptions o = small("swav");
  o.freeze_prototypes_steps = 2;
  auto m = methods::make_method(o, tiny_resnet());
  auto v = random_views(8);
  for (int64_t step = 0; step < 3; ++step) {
    m->zero_grad();
    m->loss(v, {.step = step, .total_steps = 3}).loss.backward();
    m->before_optimizer_step({.step = step, .total_steps = 3});
    EXPECT_EQ(m->module("prototypes").param("weight").grad().defined(), step >= 2) << step;
  }
}

TEST(Methods, PerViewForwardIsTheDefaultOfTheMethodsWhoseReferenceCodeForwardsEachView) {
  for (const auto& name : methods::method_names()) {
    const bool want = name == "byol" || name == "simsiam" || name == "wmse";
    EXPECT_EQ(methods::defaults_for(name).per_view_forward, want) << name;
    auto keys = methods::keys_for(name);
    const bool has = std::find(keys.begin(), keys.end(), "per_view_forward") != keys.end();
    EXPECT_EQ(has, name != "moco") << name << ": MoCo's forward is its shuffle-BN groups, so the key is refused";
  }
}

TEST(Methods, UnknownNamesAndBadViewCountsAreClearErrors) {
  std::string e = test::error_of([] { methods::defaults_for("simclear"); });
  EXPECT_NE(e.find("simclear"), std::string::npos);
  EXPECT_NE(e.find("barlow_twins"), std::string::npos);
  auto m = methods::make_method(small("byol"), tiny_resnet());
  e = test::error_of([&] { m->loss(random_views(8, 1), {}); });
  EXPECT_NE(e.find("at least 2 views"), std::string::npos) << e;
  e = test::error_of([&] { m->loss(random_views(8, 3), {}); });
  EXPECT_NE(e.find("exactly 2 views"), std::string::npos) << e;
}

// 12 SGD steps on one fixed batch of two random views: every method's loss falls.
class MethodTrains : public ::testing::TestWithParam<std::string> {};

TEST_P(MethodTrains, LossFallsOnAFixedBatch) {
  manual_seed(10);
  MethodOptions o = small(GetParam());
  o.whiten_size = 24;
  o.projector.out = 16;
  o.predictor.out = 16;
  auto m = methods::make_method(o, tiny_resnet(4));
  auto views = random_views(24, 2, 8);
  views[1] = add(views[0], mul(views[1], 0.3));  // two views that share most of their content
  std::vector<Tensor> trainable;
  for (auto& [n, p] : m->trainable_parameters()) trainable.push_back(p);
  optim::SGD sgd(trainable, {.lr = 0.05, .momentum = 0.9});
  std::vector<double> losses;
  for (int64_t s = 0; s < 12; ++s) {
    methods::StepInfo info{.step = s, .total_steps = 12};
    Tensor l = m->loss(views, info).loss;
    losses.push_back(l.item());
    sgd.zero_grad();
    l.backward();
    m->before_optimizer_step(info);
    sgd.step();
    m->after_optimizer_step(info);
  }
  double first = (losses[0] + losses[1]) / 2, last = (losses[10] + losses[11]) / 2;
  EXPECT_LT(last, first - 1e-3 * std::abs(first)) << GetParam() << ": " << first << " -> " << last;
}

INSTANTIATE_TEST_SUITE_P(All, MethodTrains, ::testing::ValuesIn(methods::method_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace siam

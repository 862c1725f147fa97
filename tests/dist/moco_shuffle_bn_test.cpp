// MoCo's shuffle-BN across ranks (methods/moco.cpp) with plain, per-rank batch norms: on 2 ranks the keys, the
// loss and the DDP-averaged gradients equal a reference built here in one process from the method's modules
// alone: the global key batch permuted (Method::permutation, purpose 1, the step), each rank's slice of it
// through the key encoder in train mode in `shuffle_bn_groups` groups (each its own batch statistics), the keys
// put back in global row order; each rank's queries from its own rows, in groups; InfoNCE written out with
// plain ops. The defining property is checked too: no positive pair's key was normalized over a batch of the
// same samples as its query (without the shuffle every one is), and the keys are far from the keys an
// unshuffled run would make, so a shuffle that was skipped fails this test.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/dist/backends.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "methods/moco.h"
#include "tests/dist/dist_util.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

constexpr int64_t kStep = 3;
constexpr uint64_t kShufflePurpose = 1;  // methods/moco.cpp: permutation(world * 2B, /*purpose=*/1, step)

methods::MethodOptions moco_options(int groups) {
  methods::MethodOptions o = tiny_method_options("moco");
  o.queue_size = 40;  // >= the 2 W B = 16 keys of one step: they land in rows 0..15
  o.shuffle_bn_groups = groups;
  o.seed = 5;
  return o;
}

std::shared_ptr<methods::MoCo> build_moco(int groups) {
  manual_seed(7);
  auto m = std::dynamic_pointer_cast<methods::MoCo>(methods::make_method(moco_options(groups), tiny_resnet(2)));
  m->to(DType::f64);  // f64: the tolerances measure the algebra, not summation order
  m->train();
  return m;
}

// The permutation the methods draw from (options().seed, purpose, step): Method::permutation made public.
class PermutationSource final : public methods::Method {
 public:
  explicit PermutationSource(const methods::MethodOptions& o) : Method("PermutationSource", tiny_resnet(1)) {
    opt_ = o;
  }
  methods::LossOutput loss(const std::vector<Tensor>&, const methods::StepInfo&) override { return {}; }
  using Method::permutation;
};

// head(enc(x)) over x's rows in `groups` consecutive equal groups, each normalized with its own batch statistics.
Tensor forward_in_groups(nn::Module& enc, nn::Module& head, const Tensor& x, int64_t groups) {
  const int64_t len = x.size(0) / groups;
  std::vector<Tensor> outs;
  for (int64_t g = 0; g < groups; ++g) outs.push_back(head(enc(x.narrow(0, g * len, len))));
  return cat(outs, 0);  // (rows, D)
}

// InfoNCE written out: row i's logits [q_i . k_i, q_i . queue_0, ...] / t (all L2-normalized), label 0, mean.
Tensor infonce(const Tensor& q, const Tensor& k, const Tensor& queue, double t) {
  Tensor qn = normalize(q, 1), kn = normalize(k, 1), un = normalize(queue, 1);
  Tensor pos = sum(mul(qn, kn), {1}, /*keepdim=*/true);       // (N, 1)
  Tensor logits = div(cat({pos, matmul(qn, un.t())}, 1), t);  // (N, 1 + K)
  return mean(sub(logsumexp(logits, 1), logits.narrow(1, 0, 1).reshape({-1})));
}

struct Reference {
  double loss = 0;
  Tensor keys;  // (W 2B, D): the normalized key of every global row (rank-major: rank r's view 0, view 1 rows)
  nn::NamedTensors grads;
};

// The 2-rank step of `m`'s modules emulated in one process: views (W B, C, H, W) each, `perm` of the W 2B global
// rows (identity: no shuffle), `groups` batch-norm groups per rank. The loss is the mean of the ranks' losses,
// so its parameter gradients are what DDP's average of the ranks' gradients is.
Reference reference_step(methods::MoCo& m, const std::vector<Tensor>& views, int world,
                         const std::vector<int64_t>& perm, int64_t groups) {
  const int64_t b = views[0].size(0) / world, n = 2 * b;
  const auto& opt = m.options();
  std::vector<Tensor> xs;  // rank r's batch (2B, C, H, W): its view-0 rows, then its view-1 rows
  for (int r = 0; r < world; ++r) xs.push_back(cat({views[0].narrow(0, r * b, b), views[1].narrow(0, r * b, b)}, 0));
  Reference out;
  {
    NoGradGuard ng;
    Tensor xg = cat(xs, 0);  // (W 2B, C, H, W)
    out.keys = zeros({world * n, opt.projector.out}, DType::f64);
    for (int r = 0; r < world; ++r) {  // rank r's key slice: global rows perm[r 2B .. (r + 1) 2B)
      std::vector<int64_t> rows(perm.begin() + r * n, perm.begin() + (r + 1) * n);
      Tensor slice = index_select(xg, 0, from_vector_i64(rows, {n}));
      Tensor k = normalize(forward_in_groups(m.module("key_encoder"), m.module("key_projector"), slice, groups), 1);
      for (int64_t j = 0; j < n; ++j) out.keys.narrow(0, rows[static_cast<size_t>(j)], 1).copy_(k.narrow(0, j, 1));
    }
  }
  m.zero_grad();
  Tensor total;
  for (int r = 0; r < world; ++r) {
    Tensor q = forward_in_groups(m.encoder(), m.module("projector"), xs[static_cast<size_t>(r)], groups);
    Tensor k = out.keys.narrow(0, r * n, n);
    Tensor l = infonce(q.narrow(0, 0, b), k.narrow(0, b, b), m.queue(), opt.temperature);  // view 0 vs view 1's key
    if (opt.symmetric) l = mul(add(l, infonce(q.narrow(0, b, b), k.narrow(0, 0, b), m.queue(), opt.temperature)), 0.5);
    l = div(l, static_cast<double>(world));
    total = total.defined() ? add(total, l) : l;
  }
  total.backward();
  out.loss = total.item();
  for (auto& [name, p] : m.trainable_parameters())
    out.grads.emplace_back(name, p.grad().defined() ? p.grad().clone() : zeros_like(p));
  return out;
}

// The samples (rank r's row j is global sample r B + j, in either view) of each global row's batch-norm batch:
// on the query side its rank's group, on the key side the group of the key slice that holds it.
std::vector<int64_t> query_batch_samples(int64_t row, int64_t b, int64_t groups) {
  const int64_t n = 2 * b, len = n / groups, r = row / n, g = (row % n) / len;
  std::vector<int64_t> s;
  for (int64_t w = r * n + g * len; w < r * n + (g + 1) * len; ++w) s.push_back(r * b + (w % n) % b);
  std::sort(s.begin(), s.end());
  return s;
}
std::vector<int64_t> key_batch_samples(int64_t row, int64_t b, int64_t groups, const std::vector<int64_t>& perm) {
  const int64_t n = 2 * b, len = n / groups;
  const int64_t j = std::find(perm.begin(), perm.end(), row) - perm.begin();  // position in the shuffled batch
  const int64_t start = (j / n) * n + ((j % n) / len) * len;
  std::vector<int64_t> s;
  for (int64_t p = start; p < start + len; ++p) {
    const int64_t w = perm[static_cast<size_t>(p)];
    s.push_back((w / n) * b + (w % n) % b);
  }
  std::sort(s.begin(), s.end());
  return s;
}
// Positive pairs (query row, key row) of the global batch whose key's batch holds exactly its query's samples.
int64_t pairs_sharing_batch_samples(int world, int64_t b, int64_t groups, const std::vector<int64_t>& perm) {
  int64_t shared = 0;
  const int64_t n = 2 * b;
  for (int r = 0; r < world; ++r)
    for (int64_t i = 0; i < b; ++i)
      for (int v = 0; v < 2; ++v) {
        const int64_t q = r * n + v * b + i, k = r * n + (1 - v) * b + i;
        shared += query_batch_samples(q, b, groups) == key_batch_samples(k, b, groups, perm);
      }
  return shared;
}

class MocoShuffleBnOnTwoRanks : public ::testing::TestWithParam<int> {};

TEST_P(MocoShuffleBnOnTwoRanks, KeysLossAndGradientsEqualTheShuffledReference) {
  dist::Communicator& world = dist::world();
  ASSERT_EQ(world.world_size(), 2);
  const int W = world.world_size();
  const int groups = GetParam();
  const int64_t b = 4, n = 2 * b;  // per rank; BN groups of n / groups rows
  std::vector<Tensor> global_views;
  for (int v = 0; v < 2; ++v) global_views.push_back(global_batch({W * b, 3, 8, 8}, 300 + v).to(DType::f64));
  const std::vector<int64_t> perm = PermutationSource(moco_options(groups)).permutation(W * n, kShufflePurpose, kStep);
  std::vector<int64_t> identity(perm.size());
  for (size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<int64_t>(i);

  // The defining property, for the permutation of this step: no positive pair's key is normalized over a batch
  // of the same samples as its query; without the shuffle every pair's is.
  EXPECT_EQ(pairs_sharing_batch_samples(W, b, groups, perm), 0) << "groups " << groups;
  EXPECT_EQ(pairs_sharing_batch_samples(W, b, groups, identity), 2 * W * b) << "groups " << groups;

  auto single = dist::detail::make_single("ref", 60);
  auto ref = build_moco(groups);
  ref->set_communicator(single.get());
  const Reference want = reference_step(*ref, global_views, W, perm, groups);
  const Reference unshuffled = reference_step(*build_moco(groups), global_views, W, identity, groups);

  // The method on 2 ranks, plain (per-rank) batch norms, B rows per view each.
  auto m = build_moco(groups);
  m->set_communicator(&world);
  m->zero_grad();
  const methods::StepInfo info{.step = kStep, .total_steps = 10};
  Tensor l = m->loss({my_rows(global_views[0], world), my_rows(global_views[1], world)}, info).loss;
  l.backward();
  Tensor loss = from_vector({l.item()}, {1}, DType::f64);
  world.all_reduce(loss, dist::ReduceOp::avg);
  const double tol = 1e-10;
  EXPECT_NEAR(loss.item(), want.loss, tol * std::abs(want.loss)) << "groups " << groups;
  // The test can tell: skipping the shuffle moves the loss by orders of magnitude more than the tolerance.
  EXPECT_GT(std::abs(unshuffled.loss - want.loss), 1e4 * tol * std::abs(want.loss)) << "groups " << groups;

  // Gradients after DDP's average.
  auto grads = m->trainable_parameters();
  ASSERT_EQ(grads.size(), want.grads.size());
  double scale = 0;
  for (auto& [name, g] : want.grads) scale = std::max(scale, max_abs(g));
  for (size_t i = 0; i < grads.size(); ++i) {
    ASSERT_EQ(grads[i].first, want.grads[i].first);
    Tensor g = grads[i].second.grad().defined() ? grads[i].second.grad() : zeros_like(grads[i].second);
    EXPECT_REL_NEAR(rank_average(g, world), want.grads[i].second, 1e-9,
                    "groups " << groups << " grad " << grads[i].first, 1e-6 * scale);
  }

  // The keys the method made: enqueued after the step, view-major in global sample order (every rank's view-0
  // keys, then every rank's view-1 keys), the same on every rank.
  m->after_optimizer_step(info);
  std::vector<Tensor> order, order_unshuffled;
  for (int v = 0; v < 2; ++v)
    for (int r = 0; r < W; ++r) {
      order.push_back(want.keys.narrow(0, r * n + v * b, b));
      order_unshuffled.push_back(unshuffled.keys.narrow(0, r * n + v * b, b));
    }
  Tensor got = m->queue().narrow(0, 0, W * n);
  EXPECT_REL_NEAR(got, cat(order, 0), tol, "groups " << groups << " keys");
  EXPECT_GT(rel_err(got, cat(order_unshuffled, 0)), 1e-3) << "groups " << groups << ": the keys of an unshuffled run";
  world.barrier();
}

INSTANTIATE_TEST_SUITE_P(All, MocoShuffleBnOnTwoRanks, ::testing::Values(1, 2),
                         [](const auto& info) { return "Groups" + std::to_string(info.param); });

}  // namespace
}  // namespace siam::test

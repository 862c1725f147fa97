// Gradient-check samples for the elementwise, reduction, shape, index, linalg and loss ops
// (run by tests/unit/op_registry_test.cpp).
#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "tests/unit/op_samples.h"

namespace siam::test {
namespace {

using In = std::vector<Tensor>;

std::vector<OpSample> binary_samples(Tensor (*f)(const Tensor&, const Tensor&), double lo = -1.0, double hi = 1.0) {
  auto fn = [f](const In& v) { return f(v[0], v[1]); };
  return {
      {"same shape [3,4]", {rnd({3, 4}, lo, hi), rnd({3, 4}, lo, hi)}, fn},
      {"broadcast [3,1] x [4]", {rnd({3, 1}, lo, hi), rnd({4}, lo, hi)}, fn},
      {"broadcast [2,1,3] x [4,1]", {rnd({2, 1, 3}, lo, hi), rnd({4, 1}, lo, hi)}, fn},
      {"non-contiguous [4,3] x [4,3]", {rnd_noncontig({4, 3}, lo, hi), rnd_noncontig({4, 3}, lo, hi)}, fn},
      {"scalar tensor [] x [2,3]", {rnd({}, lo, hi), rnd({2, 3}, lo, hi)}, fn},
  };
}

std::vector<OpSample> unary_samples(std::function<Tensor(const Tensor&)> f, double lo = -1.0, double hi = 1.0) {
  auto fn = [f](const In& v) { return f(v[0]); };
  return {
      {"[3,4]", {rnd({3, 4}, lo, hi)}, fn},
      {"non-contiguous [4,5]", {rnd_noncontig({4, 5}, lo, hi)}, fn},
      {"[]", {rnd({}, lo, hi)}, fn},
  };
}

// Values kept away from kinks (0 for abs/relu, clamp bounds) so central differences are valid.
Tensor away_from(const Tensor& t, double point, double gap) {
  Tensor s = sign(sub(t, point));
  return add(t, mul(s, gap));
}

SIAM_OP_SAMPLES("add") { return binary_samples(static_cast<Tensor (*)(const Tensor&, const Tensor&)>(&add)); }
SIAM_OP_SAMPLES("sub") { return binary_samples(static_cast<Tensor (*)(const Tensor&, const Tensor&)>(&sub)); }
SIAM_OP_SAMPLES("mul") { return binary_samples(static_cast<Tensor (*)(const Tensor&, const Tensor&)>(&mul)); }
SIAM_OP_SAMPLES("div") { return binary_samples(static_cast<Tensor (*)(const Tensor&, const Tensor&)>(&div), 0.5, 2.0); }
SIAM_OP_SAMPLES("pow") { return binary_samples(static_cast<Tensor (*)(const Tensor&, const Tensor&)>(&pow), 0.5, 2.0); }
SIAM_OP_SAMPLES("maximum") { return binary_samples(&maximum); }
SIAM_OP_SAMPLES("minimum") { return binary_samples(&minimum); }
SIAM_OP_SAMPLES("add_scalar") { return unary_samples([](const Tensor& x) { return add(x, 0.7); }); }
SIAM_OP_SAMPLES("mul_scalar") { return unary_samples([](const Tensor& x) { return mul(x, -1.3); }); }
SIAM_OP_SAMPLES("rsub_scalar") { return unary_samples([](const Tensor& x) { return rsub(2.0, x); }); }
SIAM_OP_SAMPLES("rdiv_scalar") { return unary_samples([](const Tensor& x) { return rdiv(2.0, x); }, 0.5, 2.0); }
SIAM_OP_SAMPLES("pow_scalar") {
  auto v = unary_samples([](const Tensor& x) { return pow(x, 3.0); });
  auto w = unary_samples([](const Tensor& x) { return pow(x, 2.5); }, 0.5, 2.0);
  auto s = unary_samples([](const Tensor& x) { return square(x); });
  v.insert(v.end(), w.begin(), w.end());
  v.insert(v.end(), s.begin(), s.end());
  return v;
}
SIAM_OP_SAMPLES("neg") { return unary_samples([](const Tensor& x) { return neg(x); }); }
SIAM_OP_SAMPLES("exp") { return unary_samples([](const Tensor& x) { return exp(x); }); }
SIAM_OP_SAMPLES("log") { return unary_samples([](const Tensor& x) { return log(x); }, 0.2, 3.0); }
SIAM_OP_SAMPLES("sqrt") { return unary_samples([](const Tensor& x) { return sqrt(x); }, 0.2, 3.0); }
SIAM_OP_SAMPLES("rsqrt") { return unary_samples([](const Tensor& x) { return rsqrt(x); }, 0.2, 3.0); }
SIAM_OP_SAMPLES("abs") {
  return unary_samples([](const Tensor& x) { return abs(away_from(x.detach(), 0, 0.05) + (x - x.detach())); });
}
SIAM_OP_SAMPLES("clamp") {
  // kept away from the bounds -0.3 and 0.4
  return unary_samples([](const Tensor& x) {
    Tensor shift = sub(away_from(away_from(x.detach(), -0.3, 0.02), 0.4, 0.02), x.detach());
    return clamp(x + shift, -0.3, 0.4);
  });
}
SIAM_OP_SAMPLES("clamp_min") {
  // kept away from the bound -0.3
  return unary_samples([](const Tensor& x) {
    return clamp_min(x + sub(away_from(x.detach(), -0.3, 0.02), x.detach()), -0.3);
  });
}
SIAM_OP_SAMPLES("relu") {
  return unary_samples([](const Tensor& x) { return relu(x + sub(away_from(x.detach(), 0, 0.05), x.detach())); });
}
SIAM_OP_SAMPLES("gelu") { return unary_samples([](const Tensor& x) { return gelu(mul(x, 3.0)); }); }
SIAM_OP_SAMPLES("sigmoid") { return unary_samples([](const Tensor& x) { return sigmoid(mul(x, 3.0)); }); }
SIAM_OP_SAMPLES("tanh") { return unary_samples([](const Tensor& x) { return tanh(mul(x, 2.0)); }); }
SIAM_OP_SAMPLES("where") {
  Tensor cond = gt(rnd({3, 4}), 0.0);
  Tensor cond_b = gt(rnd({4}), 0.0);
  return {
      {"[3,4] ? [3,4] : [3,4]", {cond, rnd({3, 4}), rnd({3, 4})}, [](const In& v) { return where(v[0], v[1], v[2]); }},
      {"broadcast [4] ? [3,1] : [3,4]", {cond_b, rnd({3, 1}), rnd({3, 4})},
       [](const In& v) { return where(v[0], v[1], v[2]); }},
  };
}

// ---- reductions ----
SIAM_OP_SAMPLES("sum") {
  return {
      {"all [3,4]", {rnd({3, 4})}, [](const In& v) { return sum(v[0]); }},
      {"dim 1 [3,4,2]", {rnd({3, 4, 2})}, [](const In& v) { return sum(v[0], {1}); }},
      {"dims {0,2} keepdim", {rnd({3, 4, 2})}, [](const In& v) { return sum(v[0], {0, -1}, true); }},
      {"non-contiguous dim 0", {rnd_noncontig({4, 3})}, [](const In& v) { return sum(v[0], {0}); }},
  };
}
SIAM_OP_SAMPLES("mean") {
  return {
      {"all", {rnd({3, 4})}, [](const In& v) { return mean(v[0]); }},
      {"dim 0 keepdim", {rnd({3, 4, 2})}, [](const In& v) { return mean(v[0], {0}, true); }},
      {"dims {1,2}", {rnd_noncontig({3, 4})}, [](const In& v) { return mean(v[0], {1}); }},
  };
}
SIAM_OP_SAMPLES("max") {
  return {
      {"all", {rnd({3, 4})}, [](const In& v) { return max(v[0]); }},
      {"dim 1", {rnd({3, 5})}, [](const In& v) { return max(v[0], {1}); }},
      {"dims {0,2} keepdim", {rnd({3, 4, 2})}, [](const In& v) { return max(v[0], {0, 2}, true); }},
  };
}
SIAM_OP_SAMPLES("min") {
  return {
      {"dim 1", {rnd({3, 5})}, [](const In& v) { return min(v[0], {1}); }},
      {"all dims", {rnd({3, 4})}, [](const In& v) { return min(v[0], {0, 1}); }},
      {"dims {0,2} keepdim", {rnd({3, 4, 2})}, [](const In& v) { return min(v[0], {0, 2}, true); }},
      {"non-contiguous dim 0", {rnd_noncontig({4, 3})}, [](const In& v) { return min(v[0], {0}); }},
  };
}
SIAM_OP_SAMPLES("var") {
  return {
      {"unbiased dim 0", {rnd({5, 3})}, [](const In& v) { return var(v[0], {0}); }},
      {"biased dims {0,2} keepdim", {rnd({3, 2, 4})}, [](const In& v) { return var(v[0], {0, 2}, 0, true); }},
      {"non-contiguous dim 1", {rnd_noncontig({4, 3})}, [](const In& v) { return var(v[0], {1}); }},
  };
}
SIAM_OP_SAMPLES("softmax") {
  return {
      {"dim 1", {rnd({3, 5}, -3, 3)}, [](const In& v) { return softmax(v[0], 1); }},
      {"dim 0 of 3-D", {rnd({4, 2, 3}, -3, 3)}, [](const In& v) { return softmax(v[0], 0); }},
      {"non-contiguous dim -1", {rnd_noncontig({4, 3}, -3, 3)}, [](const In& v) { return softmax(v[0], -1); }},
  };
}
SIAM_OP_SAMPLES("log_softmax") {
  return {
      {"dim 1", {rnd({3, 5}, -3, 3)}, [](const In& v) { return log_softmax(v[0], 1); }},
      {"dim 1 of 3-D", {rnd({2, 4, 3}, -3, 3)}, [](const In& v) { return log_softmax(v[0], 1); }},
  };
}
SIAM_OP_SAMPLES("logsumexp") {
  return {
      {"dim 1", {rnd({3, 5}, -3, 3)}, [](const In& v) { return logsumexp(v[0], 1); }},
      {"dim 0 keepdim", {rnd({4, 3}, -3, 3)}, [](const In& v) { return logsumexp(v[0], 0, true); }},
  };
}
SIAM_OP_SAMPLES("norm") {
  return {
      {"dim 1", {rnd({3, 5})}, [](const In& v) { return norm(v[0], {1}); }},
      {"dims {0,1} keepdim", {rnd({3, 4, 2})}, [](const In& v) { return norm(v[0], {0, 1}, true); }},
  };
}

// ---- views and shapes ----
SIAM_OP_SAMPLES("view") {
  return {{"[3,4] -> [2,6]", {rnd({3, 4})}, [](const In& v) { return v[0].view({2, -1}); }}};
}
SIAM_OP_SAMPLES("reshape") {
  return {{"non-contiguous [4,3] -> [12]", {rnd_noncontig({4, 3})}, [](const In& v) { return v[0].reshape({12}); }},
          {"[2,3,2] -> [3,4]", {rnd({2, 3, 2})}, [](const In& v) { return v[0].reshape({3, 4}); }}};
}
SIAM_OP_SAMPLES("slice") {
  return {{"dim 1 step 2", {rnd({3, 7})}, [](const In& v) { return v[0].slice(1, 1, 6, 2); }},
          {"negative bounds", {rnd({5, 2})}, [](const In& v) { return v[0].slice(0, -4, -1); }}};
}
SIAM_OP_SAMPLES("narrow") {
  return {{"dim 0", {rnd({5, 3})}, [](const In& v) { return v[0].narrow(0, 1, 3); }}};
}
SIAM_OP_SAMPLES("transpose") {
  return {{"[2,3,4] (0,2)", {rnd({2, 3, 4})}, [](const In& v) { return mul(v[0].transpose(0, 2), 1.0); }}};
}
SIAM_OP_SAMPLES("permute") {
  return {{"[2,3,4] (1,2,0)", {rnd({2, 3, 4})}, [](const In& v) { return v[0].permute({1, 2, 0}); }}};
}
SIAM_OP_SAMPLES("expand") {
  return {{"[3,1] -> [2,3,4]", {rnd({3, 1})}, [](const In& v) { return v[0].expand({2, 3, 4}); }}};
}
SIAM_OP_SAMPLES("squeeze") {
  return {{"[3,1,2] dim 1", {rnd({3, 1, 2})}, [](const In& v) { return v[0].squeeze(1); }},
          {"all", {rnd({1, 3, 1})}, [](const In& v) { return v[0].squeeze(); }}};
}
SIAM_OP_SAMPLES("unsqueeze") {
  return {{"[3,2] dim -1", {rnd({3, 2})}, [](const In& v) { return v[0].unsqueeze(-1); }}};
}
SIAM_OP_SAMPLES("contiguous") {
  return {{"non-contiguous [3,4]", {rnd_noncontig({3, 4})}, [](const In& v) { return v[0].contiguous(); }}};
}
SIAM_OP_SAMPLES("cat") {
  return {{"dim 1 of three", {rnd({2, 3}), rnd({2, 1}), rnd_noncontig({2, 2})},
           [](const In& v) { return cat(v, 1); }},
          {"dim 0", {rnd({1, 3}), rnd({2, 3})}, [](const In& v) { return cat(v, 0); }}};
}
SIAM_OP_SAMPLES("stack") {
  return {{"dim 1", {rnd({2, 3}), rnd({2, 3})}, [](const In& v) { return stack(v, 1); }}};
}
SIAM_OP_SAMPLES("split") {
  return {{"[7,2] by 3, weighted pieces", {rnd({7, 2})}, [](const In& v) {
             auto p = split(v[0], 3, 0);
             return cat({mul(p[0], 2.0), mul(p[1], 3.0), p[2]}, 0);
           }}};
}
SIAM_OP_SAMPLES("chunk") {
  return {{"[2,5] in 2 along dim 1", {rnd({2, 5})}, [](const In& v) {
             auto p = chunk(v[0], 2, 1);
             return mul(sum(p[0], {1}), sum(p[1], {1}));
           }}};
}

// ---- indexing ----
SIAM_OP_SAMPLES("index_select") {
  Tensor idx = from_vector_i64({2, 0, 2, 1}, {4});
  return {{"dim 0 with repeats", {rnd({3, 2}), idx}, [](const In& v) { return index_select(v[0], 0, v[1]); }},
          {"dim 1", {rnd({2, 3, 2}), idx}, [](const In& v) { return index_select(v[0], 1, v[1]); }}};
}
SIAM_OP_SAMPLES("gather") {
  Tensor idx = from_vector_i64({0, 2, 1, 1, 0, 0}, {3, 2});
  return {{"dim 1", {rnd({3, 4}), idx}, [](const In& v) { return gather(v[0], 1, v[1]); }},
          {"dim 0 non-contiguous", {rnd_noncontig({3, 3}), idx}, [](const In& v) { return gather(v[0], 0, v[1]); }}};
}
SIAM_OP_SAMPLES("scatter_add") {
  Tensor idx = from_vector_i64({0, 2, 1, 1, 0, 0}, {3, 2});
  return {{"dim 1", {rnd({3, 4}), idx, rnd({3, 2})}, [](const In& v) { return scatter_add(v[0], 1, v[1], v[2]); }},
          {"dim 0, src larger", {rnd({3, 2}), idx, rnd({4, 3})},
           [](const In& v) { return scatter_add(v[0], 0, v[1], v[2]); }}};
}

// ---- linear algebra ----
SIAM_OP_SAMPLES("matmul") {
  auto mm = [](const In& v) { return matmul(v[0], v[1]); };
  return {
      {"[3,4] @ [4,2]", {rnd({3, 4}), rnd({4, 2})}, mm},
      {"transposed operands", {rnd_noncontig({3, 4}), rnd_noncontig({4, 2})}, mm},
      {"batched broadcast [2,1,3,4] @ [3,4,2]", {rnd({2, 1, 3, 4}), rnd({3, 4, 2})}, mm},
      {"batch folded [2,3,4] @ [4,5]", {rnd({2, 3, 4}), rnd({4, 5})}, mm},
      {"vector @ matrix", {rnd({4}), rnd({4, 3})}, mm},
      {"matrix @ vector", {rnd({3, 4}), rnd({4})}, mm},
      {"vector @ vector", {rnd({4}), rnd({4})}, mm},
  };
}
SIAM_OP_SAMPLES("linear") {
  auto lin = [](const In& v) { return linear(v[0], v[1], v[2]); };
  return {
      {"[5,3] -> 4 with bias", {rnd({5, 3}), rnd({4, 3}), rnd({4})}, lin},
      {"3-D input, no bias", {rnd({2, 3, 3}), rnd({4, 3}), Tensor()}, lin},
      {"non-contiguous input and weight", {rnd_noncontig({5, 3}), rnd_noncontig({4, 3}), rnd({4})}, lin},
  };
}

// ---- losses ----
SIAM_OP_SAMPLES("cross_entropy") {
  Tensor t = from_vector_i64({1, 0, 3}, {3});
  return {
      {"class indices", {rnd({3, 4}, -2, 2), t}, [](const In& v) { return cross_entropy(v[0], v[1]); }},
      {"label smoothing 0.1, sum", {rnd({3, 4}, -2, 2), t},
       [](const In& v) { return cross_entropy(v[0], v[1], 0.1, Reduction::sum); }},
      {"soft targets", {rnd({3, 4}, -2, 2), softmax(rnd({3, 4}), 1)},
       [](const In& v) { return cross_entropy(v[0], v[1]); }},
      {"none reduction", {rnd({3, 4}, -2, 2), t},
       [](const In& v) { return cross_entropy(v[0], v[1], 0.0, Reduction::none); }},
  };
}
SIAM_OP_SAMPLES("mse_loss") {
  return {{"mean", {rnd({3, 4}), rnd({3, 4})}, [](const In& v) { return mse_loss(v[0], v[1]); }},
          {"none", {rnd({2, 3}), rnd_noncontig({2, 3})},
           [](const In& v) { return mse_loss(v[0], v[1], Reduction::none); }}};
}
SIAM_OP_SAMPLES("cosine_similarity") {
  return {{"dim 1", {rnd({3, 5}), rnd({3, 5})}, [](const In& v) { return cosine_similarity(v[0], v[1]); }},
          {"broadcast dim -1", {rnd({2, 3, 4}), rnd({3, 4})},
           [](const In& v) { return cosine_similarity(v[0], v[1], -1); }}};
}
SIAM_OP_SAMPLES("normalize") {
  return {{"dim 1", {rnd({3, 5})}, [](const In& v) { return normalize(v[0], 1); }},
          {"dim 0 non-contiguous", {rnd_noncontig({4, 3})}, [](const In& v) { return normalize(v[0], 0); }}};
}
SIAM_OP_SAMPLES("dropout") {
  // The mask is redrawn on each call, so the sample reseeds to make the function deterministic.
  return {{"p 0.3", {rnd({4, 5})}, [](const In& v) {
             manual_seed(99);
             return dropout(v[0], 0.3, true);
           }}};
}

}  // namespace
}  // namespace siam::test

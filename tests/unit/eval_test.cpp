// The evaluation of frozen features: weighted kNN against a direct computation, the linear probe on
// separable data, feature extraction order and labels. (train/eval.h)
#include "train/eval.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/core/random.h"
#include "engine/data/dataset.h"
#include "engine/nn/activation.h"
#include "engine/nn/linear.h"
#include "engine/nn/sequential.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/shape.h"
#include "tests/unit/test_util.h"

namespace siam {
namespace {

// kNN written directly from its definition: cosine similarities, the k largest, votes exp(sim / t).
double knn_direct(const Tensor& xtr, const std::vector<int64_t>& ytr, const Tensor& xte,
                  const std::vector<int64_t>& yte, int k, double t, int64_t classes) {
  Tensor a = normalize(xtr.to(DType::f64), 1), b = normalize(xte.to(DType::f64), 1);
  const int64_t n = a.size(0), m = b.size(0), d = a.size(1);
  auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  int correct = 0;
  for (int64_t i = 0; i < m; ++i) {
    std::vector<std::pair<double, int64_t>> s;
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0;
      for (int64_t c = 0; c < d; ++c) dot += bv[i * d + c] * av[j * d + c];
      s.push_back({-dot, j});
    }
    std::sort(s.begin(), s.end());
    std::vector<double> votes(static_cast<size_t>(classes), 0);
    for (int j = 0; j < k; ++j)
      votes[static_cast<size_t>(ytr[static_cast<size_t>(s[j].second)])] += std::exp(-s[j].first / t);
    correct += (std::max_element(votes.begin(), votes.end()) - votes.begin()) == yte[static_cast<size_t>(i)];
  }
  return static_cast<double>(correct) / static_cast<double>(m);
}

TEST(Knn, MatchesTheDirectComputation) {
  manual_seed(1);
  const int64_t n = 300, m = 77, d = 5, classes = 4;
  // Class-dependent means so the classifier is neither perfect nor random.
  std::vector<int64_t> ytr(n), yte(m);
  for (int64_t i = 0; i < n; ++i) ytr[static_cast<size_t>(i)] = i % classes;
  for (int64_t i = 0; i < m; ++i) yte[static_cast<size_t>(i)] = (i * 7) % classes;
  Tensor centers = randn({classes, d});
  auto make = [&](const std::vector<int64_t>& y) {
    Tensor idx = from_vector_i64(y, {static_cast<int64_t>(y.size())});
    return add(index_select(centers, 0, idx), mul(randn({static_cast<int64_t>(y.size()), d}), 1.2));
  };
  Tensor xtr = make(ytr), xte = make(yte);
  train::Features tr{xtr, from_vector_i64(ytr, {n})}, te{xte, from_vector_i64(yte, {m})};
  for (int k : {1, 5, 200}) {
    for (double t : {0.1, 0.5}) {
      double got = train::knn_top1(tr, te, classes, {.k = k, .t = t, .chunk = 16});
      EXPECT_DOUBLE_EQ(got, knn_direct(xtr, ytr, xte, yte, k, t, classes)) << "k " << k << " t " << t;
    }
  }
  // Unlabeled test rows are skipped; a training label out of range is an error.
  std::vector<int64_t> yte2 = yte;
  yte2[0] = -1;
  EXPECT_NO_THROW(train::knn_top1(tr, {xte, from_vector_i64(yte2, {m})}, classes));
  std::string e = test::error_of([&] { train::knn_top1(tr, te, 3); });
  EXPECT_NE(e.find("outside [0, 3)"), std::string::npos) << e;
}

TEST(LinearProbe, SeparatesLinearlySeparableClasses) {
  manual_seed(2);
  const int64_t n = 600, d = 8, classes = 3;
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = i % classes;
  Tensor centers = mul(randn({classes, d}), 3.0);
  Tensor x = add(index_select(centers, 0, from_vector_i64(y, {n})), randn({n, d}));
  train::Features tr{x.narrow(0, 0, 450), from_vector_i64(std::vector<int64_t>(y.begin(), y.begin() + 450), {450})};
  train::Features te{x.narrow(0, 450, 150), from_vector_i64(std::vector<int64_t>(y.begin() + 450, y.end()), {150})};
  auto r = train::linear_probe(tr, te, classes, {.epochs = 20, .batch_size = 64, .lr = 0.1});
  EXPECT_GT(r.train_top1, 0.95);
  EXPECT_GT(r.test_top1, 0.95);
}

TEST(ExtractFeatures, KeepsDatasetOrderAndLabelsAndRestoresTrainingMode) {
  auto ds =
      std::make_shared<data::SyntheticDataset>(data::SyntheticOptions{.n = 37, .h = 6, .w = 6, .c = 1, .classes = 5});
  data::ViewSpec v;
  v.height = v.width = 6;
  v = train::eval_view(v);
  auto net = std::make_shared<nn::Sequential>(
      std::vector<std::shared_ptr<nn::Module>>{std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(36, 4)});
  net->train();
  auto f = train::extract_features(*net, ds, v, 8, 2);
  EXPECT_TRUE(net->is_training());
  ASSERT_EQ(f.x.size(0), 37);
  ASSERT_EQ(f.x.size(1), 4);
  auto labels = f.labels.to_vector<int64_t>();
  for (int64_t i = 0; i < 37; ++i) EXPECT_EQ(labels[static_cast<size_t>(i)], ds->get(i).label);
  EXPECT_FALSE(f.x.requires_grad());
}

}  // namespace
}  // namespace siam

// Feature extraction, weighted kNN and the linear probe. (train/eval.h)
#include "train/eval.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "engine/core/random.h"
#include "engine/data/loader.h"
#include "engine/nn/linear.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "kernels/common/philox.h"

namespace siam::train {

data::ViewSpec eval_view(const data::ViewSpec& first) {
  data::ViewSpec v;
  v.name = "eval";
  v.count = 1;
  v.height = first.height;
  v.width = first.width;
  v.crop.enabled = false;
  v.flip_p = 0;
  v.mean = first.mean;
  v.std = first.std;
  return v;
}

Features extract_features(nn::Module& encoder, std::shared_ptr<const data::Dataset> ds, const data::ViewSpec& view,
                          int64_t batch, int loader_threads) {
  const bool was_training = encoder.is_training();
  encoder.eval();
  NoGradGuard ng;
  data::Loader loader(ds, data::ViewPipeline({view}, ds->channels()),
                      {.batch_size = batch, .shuffle = false, .drop_last = false, .threads = loader_threads});
  loader.start_epoch(0);
  std::vector<Tensor> xs, ys;
  data::Batch b;
  // The encoder's device (its first parameter's): images go there, features come back to the CPU.
  auto params = encoder.parameters();
  const Device dev = params.empty() ? kCPU : params.front().device();
  while (loader.next(b)) {
    Tensor x = dev.is_cuda() ? b.views[0].to(dev) : b.views[0];
    Tensor f = encoder(x);
    xs.push_back((dev.is_cuda() ? f.to(kCPU) : f).contiguous());
    ys.push_back(b.labels.clone());
  }
  encoder.train(was_training);
  SIAM_CHECK(!xs.empty(), "extract_features: the dataset ", ds->describe(), " is empty");
  return {cat(xs, 0), cat(ys, 0)};
}

double knn_top1(const Features& train, const Features& test, int64_t num_classes, const KnnOptions& opt) {
  SIAM_CHECK(train.x.dim() == 2 && test.x.dim() == 2 && train.x.size(1) == test.x.size(1),
             "knn: feature shapes differ: train ", shape_str(train.x.shape()), ", test ", shape_str(test.x.shape()));
  SIAM_CHECK(num_classes >= 1, "knn: needs labeled training data (num_classes = ", num_classes, ")");
  const int64_t ntr = train.x.size(0), nte = test.x.size(0);
  const int k = static_cast<int>(std::min<int64_t>(opt.k, ntr));
  Tensor a = normalize(train.x.to(DType::f32), 1).contiguous();  // (Ntr, F)
  Tensor at = a.t();
  std::vector<int64_t> ytr = train.labels.to_vector<int64_t>(), yte = test.labels.to_vector<int64_t>();
  for (int64_t y : ytr)
    SIAM_CHECK(y >= 0 && y < num_classes, "knn: training label ", y, " outside [0, ", num_classes, ")");
  int64_t correct = 0, counted = 0;
  for (int64_t at0 = 0; at0 < nte; at0 += opt.chunk) {
    const int64_t m = std::min(opt.chunk, nte - at0);
    Tensor q = normalize(test.x.narrow(0, at0, m).to(DType::f32), 1);
    Tensor sim = matmul(q, at).contiguous();  // (m, Ntr)
    const float* s = sim.data<float>();
#pragma omp parallel for reduction(+ : correct, counted) schedule(dynamic, 8)
    for (int64_t i = 0; i < m; ++i) {
      const int64_t y = yte[static_cast<size_t>(at0 + i)];
      if (y < 0) continue;
      const float* row = s + i * ntr;
      std::vector<int64_t> idx(static_cast<size_t>(ntr));
      std::iota(idx.begin(), idx.end(), 0);
      std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(),
                       [&](int64_t p, int64_t r) { return row[p] > row[r] || (row[p] == row[r] && p < r); });
      std::vector<double> votes(static_cast<size_t>(num_classes), 0.0);
      for (int j = 0; j < k; ++j) {
        int64_t t = idx[static_cast<size_t>(j)];
        votes[static_cast<size_t>(ytr[static_cast<size_t>(t)])] += std::exp(row[t] / opt.t);
      }
      int64_t pred = std::max_element(votes.begin(), votes.end()) - votes.begin();
      correct += pred == y;
      counted += 1;
    }
  }
  SIAM_CHECK(counted > 0, "knn: the test set has no labeled sample");
  return static_cast<double>(correct) / static_cast<double>(counted);
}

LinearProbeResult linear_probe(const Features& train, const Features& test, int64_t num_classes,
                               const LinearProbeOptions& opt) {
  SIAM_CHECK(num_classes >= 2, "linear probe: needs at least 2 classes, got ", num_classes);
  SIAM_CHECK(train.x.size(1) == test.x.size(1), "linear probe: feature sizes differ: ", train.x.size(1), " vs ",
             test.x.size(1));
  // Standardize with the training set's statistics.
  Tensor xtr = train.x.to(DType::f32), xte = test.x.to(DType::f32);
  Tensor mu = mean(xtr, {0}, true), sd = add(sqrt(var(xtr, {0}, 0, true)), 1e-6);
  xtr = div(sub(xtr, mu), sd).contiguous();
  xte = div(sub(xte, mu), sd).contiguous();
  std::vector<int64_t> ytr = train.labels.to_vector<int64_t>();
  std::vector<int64_t> keep;
  for (size_t i = 0; i < ytr.size(); ++i)
    if (ytr[i] >= 0) keep.push_back(static_cast<int64_t>(i));
  SIAM_CHECK(!keep.empty(), "linear probe: no labeled training sample");
  const int64_t n = static_cast<int64_t>(keep.size()), bs = std::min(opt.batch_size, n);
  nn::Linear fc(xtr.size(1), num_classes);
  {
    NoGradGuard ng;
    fc.param("weight").zero_();
    fc.param("bias").zero_();
  }
  optim::SGD sgd(fc.parameters(), {.lr = opt.lr, .momentum = 0.9, .weight_decay = opt.weight_decay});
  const int64_t steps = n / bs, total = steps * opt.epochs;
  optim::WarmupCosineSchedule sched({.base = opt.lr, .final_value = 0, .warmup_steps = 0, .total_steps = total});
  int64_t step = 0;
  for (int e = 0; e < opt.epochs; ++e) {
    std::vector<int64_t> order = keep;
    for (int64_t i = n - 1; i > 0; --i) {
      Philox4 r = philox_block(opt.seed, 0x4c494e00ull + static_cast<uint64_t>(e), static_cast<uint64_t>(i));
      std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(r.v[0] % static_cast<uint32_t>(i + 1))]);
    }
    double lsum = 0;
    for (int64_t s = 0; s < steps; ++s, ++step) {
      std::vector<int64_t> ids(order.begin() + s * bs, order.begin() + (s + 1) * bs), yb(ids.size());
      for (size_t i = 0; i < ids.size(); ++i) yb[i] = ytr[static_cast<size_t>(ids[i])];
      sched.apply(sgd, step);
      Tensor l = cross_entropy(fc(index_select(xtr, 0, from_vector_i64(ids, {bs}))), from_vector_i64(yb, {bs}));
      sgd.zero_grad();
      l.backward();
      sgd.step();
      lsum += l.item();
    }
    if (opt.verbose && ((e + 1) % 10 == 0 || e + 1 == opt.epochs)) {
      std::printf("linear probe: epoch %d/%d  loss %.4f\n", e + 1, opt.epochs, lsum / static_cast<double>(steps));
      std::fflush(stdout);
    }
  }
  auto top1 = [&](const Tensor& x, const Tensor& y) {
    NoGradGuard ng;
    auto pred = argmax(fc(x), 1).to_vector<int64_t>();
    auto lab = y.to_vector<int64_t>();
    int64_t c = 0, cnt = 0;
    for (size_t i = 0; i < lab.size(); ++i) {
      if (lab[i] < 0) continue;
      c += pred[i] == lab[i];
      ++cnt;
    }
    return cnt ? static_cast<double>(c) / static_cast<double>(cnt) : 0.0;
  };
  return {top1(xtr, train.labels), top1(xte, test.labels)};
}

}  // namespace siam::train

// Helpers of the distributed tests: identical models and data on every rank, this rank's rows of a global
// batch, gradient averages over the ranks, and a relative comparison.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "engine/core/random.h"
#include "engine/dist/dist.h"
#include "engine/io/checkpoint.h"
#include "engine/nn/activation.h"
#include "engine/nn/batchnorm.h"
#include "engine/nn/linear.h"
#include "engine/nn/sequential.h"
#include "engine/nn/sync_batchnorm.h"

namespace siam::test {

// Linear(in, hidden) -> BatchNorm1d (SyncBatchNorm when sync) -> ReLU -> Linear(hidden, out), initialized
// from `seed` (the same values on every rank for the same seed).
inline std::shared_ptr<nn::Sequential> make_mlp(bool sync, uint64_t seed, int64_t in = 8, int64_t hidden = 16,
                                                int64_t out = 6) {
  manual_seed(seed);
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Linear>(in, hidden));
  if (sync)
    m->push_back(std::make_shared<nn::SyncBatchNorm>(hidden));
  else
    m->push_back(std::make_shared<nn::BatchNorm1d>(hidden));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(hidden, out));
  return m;
}

// A `siam train` config for the 2-rank trainer tests: SimCLR on 64 synthetic 8x8 images, ResNet-18 of width 2,
// one epoch at global batch `batch`, its files in `out`.
inline std::string tiny_train_yaml(const std::string& out, int64_t batch) {
  return "data: {kind: synthetic, size: 64, height: 8, width: 8, classes: 4, channels: 3}\n"
         "views: [{name: g, count: 2, size: 8, crop: {scale: [0.5, 1.0]}, flip: 0.5}]\n"
         "model: {arch: resnet18, stem: cifar, width: 2}\n"
         "method: {name: simclr, projector: {hidden: 16, out: 8}}\n"
         "optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1.0e-4}\n"
         "train: {epochs: 1, batch_size: " +
         std::to_string(batch) +
         ", seed: 4, threads: 1, loader_threads: 0}\n"
         "eval: {knn: false}\n"
         "out_dir: " +
         out + "\n";
}

// A global batch drawn from `seed`, the same on every rank.
inline Tensor global_batch(const Shape& shape, uint64_t seed) {
  manual_seed(seed);
  return randn(shape);
}

// This rank's block of B rows of a global (W B, ...) tensor.
inline Tensor my_rows(const Tensor& global, const dist::Communicator& c) {
  const int64_t B = global.size(0) / c.world_size();
  return global.narrow(0, c.rank() * B, B).contiguous();
}

// The average over the ranks of t (what DDP makes of a gradient).
inline Tensor rank_average(const Tensor& t, dist::Communicator& c) {
  Tensor a = t.detach().clone();
  c.all_reduce(a, dist::ReduceOp::avg);
  return a;
}

// max |a - b| / max(max |b|, floor): the norm-wise (inf) relative error; `floor` is the scale below which b
// counts as zero (a gradient that vanishes mathematically, as a bias right before a batch norm, is compared
// with the scale of the other gradients).
inline double rel_err(const Tensor& a, const Tensor& b, double floor = 1e-30) {
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  EXPECT_EQ(va.size(), vb.size());
  double d = 0, m = 0;
  for (size_t i = 0; i < std::min(va.size(), vb.size()); ++i) {
    d = std::max(d, std::fabs(va[i] - vb[i]));
    m = std::max(m, std::fabs(vb[i]));
  }
  return d / std::max(m, floor);
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::fabs(v));
  return m;
}

#define EXPECT_REL_NEAR(a, b, tol, what, ...)                                           \
  do {                                                                                  \
    const double siam_rel_ = ::siam::test::rel_err((a), (b)__VA_OPT__(, ) __VA_ARGS__); \
    EXPECT_LE(siam_rel_, (tol)) << what << ": relative error " << siam_rel_;            \
  } while (0)

// On rank 0: the float weights of the checkpoints two `siam train` runs wrote in dir_a and dir_b agree to 1e-4
// relative (f32 end to end: a few units of 1e-6 from summation order); the other ranks check nothing.
inline void expect_same_checkpoint_weights(const std::string& dir_a, const std::string& dir_b, dist::Communicator& c) {
  if (c.rank() != 0) return;
  auto a = io::load_training_checkpoint(dir_a + "/checkpoint.safetensors");
  auto b = io::load_training_checkpoint(dir_b + "/checkpoint.safetensors");
  ASSERT_EQ(a.model.size(), b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) {
    if (a.model[i].second.dtype() == DType::i64) continue;
    EXPECT_REL_NEAR(b.model[i].second.to(DType::f64), a.model[i].second.to(DType::f64), 1e-4, a.model[i].first, 1e-3);
  }
}

}  // namespace siam::test

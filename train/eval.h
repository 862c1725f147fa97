// Evaluation of an encoder's frozen features: extraction over a whole dataset (unaugmented: resize +
// normalize, eval-mode batch norm, no autograd), the weighted kNN classifier of Wu et al. 2018 (InstDisc) used
// as the monitor of every SSL library (cosine similarity, k nearest, votes weighted exp(sim / t)), and a
// linear probe trained on precomputed features.
#pragma once
#include <cstdint>
#include <memory>

#include "engine/data/dataset.h"
#include "engine/data/views.h"
#include "engine/nn/module.h"

namespace siam::train {

// The view evaluation uses: the first view spec's size and normalization, every random op off.
data::ViewSpec eval_view(const data::ViewSpec& first);

struct Features {
  Tensor x;       // (N, F) f32
  Tensor labels;  // (N) i64, -1 where unlabeled
};

// encoder(x) for every image of `ds` (in order) in batches of `batch`, with `loader_threads` threads
// decoding ahead. The encoder is put in eval mode and restored to its previous mode afterwards.
Features extract_features(nn::Module& encoder, std::shared_ptr<const data::Dataset> ds, const data::ViewSpec& view,
                          int64_t batch, int loader_threads);

struct KnnOptions {
  int k = 200;
  double t = 0.1;
  int64_t chunk = 256;  // test rows per similarity block (memory: chunk x N_train floats)
};

// Top-1 accuracy of the weighted kNN classifier; features are L2-normalized inside. Test samples with label
// -1 are skipped; train labels must lie in [0, num_classes).
double knn_top1(const Features& train, const Features& test, int64_t num_classes, const KnnOptions& opt = {});

struct LinearProbeOptions {
  int epochs = 100;
  int64_t batch_size = 256;
  double lr = 0.1;  // SGD, momentum 0.9, cosine to 0
  double weight_decay = 0;
  uint64_t seed = 0;
  bool verbose = false;  // a line per 10 epochs on stdout
};

struct LinearProbeResult {
  double train_top1 = 0, test_top1 = 0;
};

// A linear classifier (standardized features -> num_classes) trained with cross-entropy on frozen train
// features; reports its top-1 on both sets.
LinearProbeResult linear_probe(const Features& train, const Features& test, int64_t num_classes,
                               const LinearProbeOptions& opt = {});

}  // namespace siam::train

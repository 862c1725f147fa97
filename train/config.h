// The configuration of a training run: one YAML file (configs/<method>_<dataset>.yaml) with the sections
//
//   data:      the dataset (engine/data/config.h)          views:     the view pipelines (engine/data/config.h)
//   model:     {arch: resnet18, stem: cifar, width: 16, zero_init_residual: false}
//   method:    {name: simclr, temperature: 0.2, projector: {hidden: 512, out: 128, layers: 2}, ...}
//              (methods/options.h: each method reads its own keys; another key is an error)
//   optimizer: {name: sgd | lars | adamw, lr: 0.3, momentum: 0.9, weight_decay: 5e-4, nesterov: false,
//               eta: 0.001 (lars), betas: [0.9, 0.999] (adamw), exclude_bias_bn: true,
//               lr_scaling: none | linear (lr * batch_size / 256)}
//   schedule:  {name: cosine | constant, warmup_epochs: 1, final_lr: 0, warmup_start_lr: 0}
//   train:     {epochs: 5, batch_size: 256, seed: 0, threads: 0 (all cores), loader_threads: 1,
//               log_every_s: 10, checkpoint_every: 1 (epochs), sync_bn: true (under mpirun),
//               device: cpu | cuda, precision: f32 | bf16 (cuda only),
//               accumulate: 1 (micro-batches per optimizer step), ddp_bucket_mb: 25 (under mpirun)}
//   eval:      {knn: true, knn_k: 200, knn_t: 0.1, knn_every: 1, knn_train_limit: 0, knn_test_limit: 0,
//               batch_size: 512, knn_before: false (also before training: the random-encoder baseline)}
//   out_dir:   runs/simclr_fmnist
//
// Overrides: `--set key=value` sets a dotted key before validation (value parsed as YAML, so
// `--set views.0.count=4` and `--set method.projector.hidden=1024` work). Unknown sections or keys and bad
// values are siam::Errors naming the file and the dotted key.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/data/config.h"
#include "methods/options.h"

namespace siam::train {

struct OptimizerConfig {
  std::string name = "sgd";
  double lr = 0.3;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
  double eta = 0.001;
  double beta1 = 0.9, beta2 = 0.999;
  bool exclude_bias_bn = true;
  std::string lr_scaling = "none";
};

struct ScheduleConfig {
  std::string name = "cosine";
  double warmup_epochs = 1;
  double final_lr = 0;
  double warmup_start_lr = 0;
};

struct ModelConfig {
  std::string arch = "resnet18";
  std::string stem = "cifar";
  int64_t width = 16;
  bool zero_init_residual = false;
};

struct LoopConfig {
  int epochs = 5;
  int64_t batch_size = 256;
  uint64_t seed = 0;
  int threads = 0;
  int loader_threads = 1;
  double log_every_s = 10;
  int checkpoint_every = 1;
  bool sync_bn = true;            // under mpirun: batch norm statistics over the global batch
  std::string device = "cpu";     // cpu | cuda (rank r uses GPU local_rank)
  std::string precision = "f32";  // f32 | bf16 (CUDA: GEMMs and convolutions in bf16 inside an autocast scope)
  // Gradient accumulation: each rank's batch (batch_size / W) is split into `accumulate` micro-batches, each
  // forward + backward (all but the last under DDP's no_sync: no gradient all-reduce) on the loss divided by
  // `accumulate`, then one optimizer step. For a loss that is a per-sample mean this is the gradient of the
  // whole batch; batch statistics (batch norm, contrastive negatives, Barlow/VICReg/SwAV/W-MSE statistics) see
  // the micro-batch (of batch_size / accumulate samples over all ranks), as in PyTorch; MoCo's and SwAV's queues
  // take every micro-batch's keys after the step.
  int accumulate = 1;
  double ddp_bucket_mb = 25;  // DDP's gradient bucket size in MB (engine/dist/ddp.h); only under mpirun
};

struct EvalConfig {
  bool knn = true;
  int knn_k = 200;
  double knn_t = 0.1;
  int knn_every = 1;
  int64_t knn_train_limit = 0, knn_test_limit = 0;
  int64_t batch_size = 512;
  bool knn_before = false;  // also evaluate the encoder before the first step (the random-init baseline)
};

struct TrainConfig {
  std::string source;  // the file (or "<text>") it came from
  data::ViewsConfig data;
  ModelConfig model;
  methods::MethodOptions method;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  LoopConfig train;
  EvalConfig eval;
  std::string out_dir;
  std::string resolved_yaml;  // the whole config after overrides, as written to <out_dir>/config.yaml
};

// "key=value" strings as given to --set.
using Overrides = std::vector<std::string>;

TrainConfig load_train_config(const std::string& path, const Overrides& overrides = {});
TrainConfig parse_train_config(const std::string& yaml_text, const std::string& source,
                               const Overrides& overrides = {});

}  // namespace siam::train

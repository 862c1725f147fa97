// The training loop behind `siam train`: builds the dataset, views, encoder, method, optimizer and schedule
// from a TrainConfig, runs the epochs with a progress line, evaluates the kNN monitor, writes
// <out_dir>/{config.yaml, metrics.jsonl, curve.svg, checkpoint.safetensors, encoder.safetensors}, and resumes
// from a checkpoint exactly (same losses and bitwise the same weights as an uninterrupted run).
//
// Checkpoints are written atomically every train.checkpoint_every epochs, at the end, and when a stop is
// requested (SIGINT/SIGTERM through TrainOptions::stop: the current step finishes, the state is saved
// mid-epoch, and run() returns with interrupted = true). A non-finite loss stops the run before the optimizer
// step with a siam::Error naming the step; the last good checkpoint is left as it was.
//
// Data parallel (under mpirun, engine/dist): train.batch_size is the global batch, each rank reads its shard of
// every epoch and trains on batch_size / W samples; batch norms use global statistics (train.sync_bn), the
// methods see the global batch where their loss needs it (methods/method.h), DDP averages the gradients.
// Rank 0 alone prints, evaluates and writes files; every rank can resume from the same checkpoint.
// train.ddp_bucket_mb sets DDP's bucket size; train.accumulate splits each rank's batch into micro-batches whose
// gradients add up locally (DDP's no_sync) before the one all-reduce and optimizer step (train/config.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/dist/dist.h"
#include "train/config.h"

namespace siam::train {

struct EpochMetrics {
  int epoch = 0;
  int64_t step = 0;
  double loss = 0;
  double lr = 0;
  double knn_top1 = -1;  // -1: not evaluated this epoch
  double images_per_s = 0;
  double epoch_s = 0, knn_s = 0;
  std::vector<std::pair<std::string, double>> scalars;  // the method's logged terms, epoch means
  std::string json() const;
};

struct TrainOptions {
  std::string resume_dir{};                 // continue from <dir>/checkpoint.safetensors
  const std::atomic<bool>* stop = nullptr;  // set (by a signal handler) to stop after the current step
  int64_t stop_after_step = -1;             // tests: behave as if stopped after this global step
  bool quiet = false;                       // no progress lines (tests)
  bool write_outputs = true;                // write the files of the run (on rank 0 only in any case)
  dist::Communicator* comm = nullptr;       // the ranks that share the batch (null: dist::world())
};

struct TrainResult {
  std::vector<EpochMetrics> history;
  int epochs_done = 0;
  int64_t steps_done = 0;
  bool interrupted = false;
  double wall_s = 0;
  std::string final_json;     // the last line printed on stdout
  double knn_top1_init = -1;  // eval.knn_before: the kNN top-1 of the encoder before training
  int ddp_buckets = 0;        // DDP's gradient buckets (train.ddp_bucket_mb); 0 on a single rank
};

TrainResult run_training(const TrainConfig& config, const TrainOptions& options = {});

}  // namespace siam::train

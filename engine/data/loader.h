// Loader: a pool of std::threads that reads samples and computes their views ahead of the consumer, one
// whole batch per job, handing batches out in order.
//
//   Loader loader(dataset, ViewPipeline(specs, dataset->channels()), {.batch_size = 256, .threads = 4});
//   for (int64_t epoch = 0; epoch < E; ++epoch) {
//     loader.start_epoch(epoch);
//     data::Batch b;
//     while (loader.next(b)) { ... b.views[0] is (B, C, H, W) f32 ... }
//   }
//
// Order: per epoch, a Philox Fisher-Yates permutation of 0..N-1 keyed by (seed, epoch) (or 0..N-1 without
// shuffle), padded by wrapping to a multiple of world_size and split as PyTorch's DistributedSampler does
// (rank r takes positions r, r + world, ...), then cut into batches; drop_last drops a final short batch.
// Determinism: a sample's views depend only on (seed, epoch, dataset index, view) (engine/data/views.h), and
// each batch is written by one job into its own tensors, so the batches are identical for any number of
// threads (threads = 0 computes each batch inside next() on the caller's thread).
// Bad samples: a DecodeError from the dataset (an undecodable image) skips that sample; the next index
// (wrapping) that decodes takes its place, the file is named once in a warning on stderr and counted in
// skipped(). Any other exception in a worker is rethrown by next() for that batch as a siam::Error naming
// the sample index, the epoch and the original message.
// Buffers: the loader keeps a handle to every batch it hands out (at most prefetch * threads + 2 of them)
// and refills one, instead of allocating, once the consumer has released it, i.e. no Tensor or view of any
// of its tensors remains outside the loader (use counts of 1); a batch the consumer keeps is never touched.
// Every element of a refilled batch is rewritten, so reuse changes no value. A consumer that passes raw
// pointers to asynchronous work (a device copy) must keep the Tensor alive until that work is done.
// Shutdown: the destructor stops the workers and joins them (a batch in progress is finished and dropped).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/views.h"

namespace siam::data {

struct LoaderOptions {
  int64_t batch_size = 256;
  bool shuffle = true;
  bool drop_last = true;
  uint64_t seed = 0;
  int threads = 1;    // worker threads; 0: compute batches synchronously in next()
  int prefetch = 2;   // batches prepared ahead, per worker thread
  int rank = 0, world_size = 1;
  bool reuse_buffers = true;  // refill released batches (see Buffers above); false: allocate every batch
  // Views in page-locked host memory (the CUDA backend's pinned cache), so the trainer's copies to the GPU are
  // asynchronous; needs a CUDA device (siam::Error otherwise). Reused buffers stay pinned, and are refilled
  // only after the asynchronous copies Tensor::to queued from them have finished (cuda::pinned_host_wait).
  bool pin_memory = false;
  // The CUDA device the batches go to: with pin_memory, the worker threads make it theirs, so that their
  // pinned allocations do not create a context on device 0 (every rank's, on a machine of several GPUs).
  int pin_device = 0;
};

struct Batch {
  std::vector<Tensor> views;  // V tensors, view v: (B, C, H_v, W_v) f32
  Tensor labels;              // (B) i64, -1 for unlabeled samples
  Tensor indices;             // (B) i64: the dataset index of each sample
  int64_t epoch = 0, step = 0;
};

// The dataset indices one rank visits in one epoch, in order (before batching).
std::vector<int64_t> epoch_order(int64_t n, int64_t epoch, uint64_t seed, bool shuffle, int rank, int world_size);

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, ViewPipeline views, LoaderOptions opt);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const;
  const ViewPipeline& views() const { return views_; }
  const LoaderOptions& options() const { return opt_; }
  // Starts (or restarts) producing the batches of `epoch`; batches of a previous epoch not yet taken are
  // dropped.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch; false when the epoch is exhausted.
  bool next(Batch& out);
  // Samples skipped so far because they could not be decoded, and their files (or "index N").
  int64_t skipped() const;
  std::vector<std::string> skipped_names() const;
  // Batches built into recycled buffers, and into freshly allocated ones, so far.
  int64_t batches_reused() const;
  int64_t batches_allocated() const;
  // Builds one batch from the given dataset indices (what the workers run; public for tests and benchmarks).
  Batch build(const std::vector<int64_t>& indices, int64_t epoch, int64_t step) const;

 private:
  struct Ready {
    Batch batch;
    std::exception_ptr error;
  };
  void worker_loop();
  Sample get_or_skip(int64_t& index) const;
  bool take_free_buffers(int64_t batch, Batch& out) const;  // a released batch of this size, if any
  void remember(const Batch& handed_out);

  std::shared_ptr<const Dataset> dataset_;
  ViewPipeline views_;
  LoaderOptions opt_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;  // this rank's indices for the current epoch
  int64_t num_batches_ = 0, next_job_ = 0, next_out_ = 0;
  int in_flight_ = 0;
  std::map<int64_t, Ready> ready_;

  mutable std::mutex pool_mu_;
  mutable std::vector<Batch> pool_;  // handles to handed-out batches, oldest first
  mutable int64_t reused_ = 0, allocated_ = 0;

  mutable std::mutex skip_mu_;
  mutable std::set<std::string> skipped_names_;
  mutable int64_t skipped_ = 0;
};

}  // namespace siam::data

// siam::dist::DistributedDataParallel: keeps the replicas of a model identical across ranks by averaging
// parameter gradients, as torch's DDP.
//
//   dist::DistributedDataParallel ddp(model.named_parameters(), model.named_buffers());  // broadcasts from rank 0
//   for (...) {
//     { auto ns = ddp.no_sync(); loss(micro_batch_0).backward(); }   // gradient accumulation: no communication
//     loss(micro_batch_1).backward();                                 // buckets launch while backward runs
//     ddp.finish();                                                   // every parameter's .grad is the average
//     opt.step(); model.zero_grad();
//   }
//
// Buckets: the parameters, in reverse registration order (the order backward reaches them), are cut into
// buckets of about bucket_mb megabytes (one dtype per bucket). A post-accumulate-grad hook on each parameter
// copies its gradient into the bucket's flat buffer; when a bucket's last gradient has arrived, the bucket is
// handed to the communication thread (buckets are launched strictly in index order, so every rank issues the
// same sequence of collectives), which all-reduces it (avg) on DDP's own duplicate of the communicator while
// backward continues on the main thread. finish() launches what is left (a parameter that got no gradient
// this step contributes zeros, and receives the average), waits for every bucket and writes the averages
// into the .grad tensors (defining the ones that were undefined).
// Without MPI_THREAD_MULTIPLE (Communicator::concurrent_ok() false), or with overlap = false, the buckets are
// reduced on the calling thread instead (in finish()); the results are the same.
// no_sync(): the hooks do nothing until the guard ends; .grad accumulates locally, and the next backward
// outside the guard (or finish() alone) reduces the accumulated sums.
// all_reduce_grads(): the plain alternative (no hooks, no buckets): one all-reduce (avg) per parameter, now, on the
// calling thread. Use it with overlap = false, or under no_sync(), or it would reduce a step twice.
// Buffers (BN running statistics) are broadcast from rank 0 at construction and by broadcast_buffers().
// The DDP object must outlive every backward that reaches its parameters' hooks, and be destroyed before
// dist::finalize().
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/dist/dist.h"

namespace siam::dist {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct DDPOptions {
  double bucket_mb = 25.0;         // bucket capacity in MB (2^20 bytes); a larger single parameter gets its own
  bool overlap = true;             // launch buckets from the gradient hooks (false: everything in finish())
  bool broadcast_at_start = true;  // parameters and buffers from rank 0 in the constructor
};

class DistributedDataParallel {
 public:
  // comm: the communicator to average over (world() when null); DDP uses its own duplicate of it.
  DistributedDataParallel(NamedTensors parameters, NamedTensors buffers, DDPOptions options = {},
                          Communicator* comm = nullptr);
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // Waits for every bucket and writes the averaged gradients into .grad (no-op inside no_sync()).
  void finish();
  void synchronize() { finish(); }
  // The plain all-reduce (avg) of every parameter's .grad, one parameter at a time, on the calling thread.
  void all_reduce_grads();
  void broadcast_parameters(int root = 0);
  void broadcast_buffers(int root = 0);

  // While a NoSync lives, backward communicates nothing (gradient accumulation).
  class NoSync {
   public:
    explicit NoSync(DistributedDataParallel& d) : d_(&d) { d_->set_sync(false); }
    NoSync(NoSync&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;
    NoSync& operator=(NoSync&&) = delete;
    ~NoSync() {
      if (d_) d_->set_sync(true);
    }

   private:
    DistributedDataParallel* d_;
  };
  NoSync no_sync() { return NoSync(*this); }
  void set_sync(bool on);
  bool sync() const { return sync_; }

  Communicator& comm() { return *comm_; }
  int num_buckets() const { return static_cast<int>(buckets_.size()); }
  // The parameter names in each bucket, in launch order.
  std::vector<std::vector<std::string>> bucket_names() const;
  // Buckets launched from the hooks (i.e. during backward) since construction, and reduced in all.
  int64_t buckets_launched_early() const { return launched_early_; }
  int64_t buckets_reduced() const { return reduced_total_.load(); }
  // Whether a communication thread overlaps the all-reduces with backward.
  bool overlapping() const { return thread_.joinable(); }

 private:
  struct Param {
    std::string name;
    Tensor p;
    int bucket = 0;
    int64_t offset = 0;  // in the bucket's flat buffer, elements
    bool ready = false;  // its gradient of this step is in the bucket
  };
  struct Bucket {
    std::vector<int> params;
    Tensor flat;      // (numel) of the bucket's dtype
    int pending = 0;  // parameters whose gradient has not arrived this step
    bool launched = false;
    bool done = false;
    void* stream = nullptr;  // CUDA: the launching thread's current stream, which the all-reduce orders after
  };
  struct State;  // shared with the hooks, which must not outlive it

  void check_same_layout();
  void on_grad(int index);
  void copy_in(int index);
  void launch_ready();  // the ready buckets, in order
  void launch(int b);
  void comm_loop();
  void write_back();
  void reset_step();

  NamedTensors buffers_;
  DDPOptions opt_;
  std::unique_ptr<Communicator> comm_;
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;
  std::shared_ptr<State> state_;
  bool sync_ = true;
  int next_launch_ = 0;
  int64_t launched_early_ = 0;
  std::atomic<int64_t> reduced_total_{0};  // incremented by the communication thread

  // the communication thread
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> queue_;
  int outstanding_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace siam::dist

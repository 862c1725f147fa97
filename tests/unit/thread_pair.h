// Two ranks as two threads of one process: a dist::Communicator pair whose collectives exchange tensors through
// host memory. It lets a test run a cross-rank op (SyncBatchNorm, the gathered losses) with W = 2 on a single
// device, CUDA included (NCCL cannot put two ranks on one GPU), and compare against one rank on the whole
// batch. Results are formed in rank order on both ranks (bitwise the same everywhere). A rank that waits longer
// than the timeout for its partner throws a siam::Error, and a rank that fails stops its partner at once, so a
// failing test cannot hang.
//
//   test::run_pair([&](dist::Communicator& comm, int rank) { ... sync_batch_norm(x[rank], ..., comm) ... });
#pragma once
#include <array>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/core/error.h"
#include "engine/dist/dist.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/shape.h"
#include "engine/tensor.h"

namespace siam::test {

class PairHub {
 public:
  explicit PairHub(double timeout_s) : timeout_s_(timeout_s) {}

  // Deposits rank's tensor (a host copy) and returns both ranks' once the partner has deposited its own.
  std::array<Tensor, 2> exchange(int rank, const Tensor& t, const char* op) {
    Tensor mine = t.defined() ? t.detach().to(kCPU).contiguous().clone() : Tensor();
    std::unique_lock<std::mutex> lk(mu_);
    slot_[rank] = mine;
    const uint64_t gen = gen_;
    if (++arrived_ == 2) {
      done_ = slot_;
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
      return done_;
    }
    const bool ok =
        cv_.wait_for(lk, std::chrono::duration<double>(timeout_s_), [&] { return gen_ != gen || aborted_; });
    SIAM_CHECK(!aborted_ || gen_ != gen, "thread pair: rank ", rank, " stopped in ", op, ": rank ", 1 - rank,
               " failed");
    SIAM_CHECK(ok, "thread pair: rank ", rank, " waited ", timeout_s_, " s in ", op, " for rank ", 1 - rank);
    return done_;
  }
  // A rank failed: its partner stops waiting (and throws) instead of running into the timeout.
  void abort() {
    std::lock_guard<std::mutex> lk(mu_);
    aborted_ = true;
    cv_.notify_all();
  }

 private:
  double timeout_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t gen_ = 0;
  bool aborted_ = false;
  std::array<Tensor, 2> slot_, done_;
};

class PairCommunicator final : public dist::Communicator {
 public:
  PairCommunicator(std::shared_ptr<PairHub> hub, int rank)
      : Communicator("thread-pair", 30.0), hub_(std::move(hub)), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return 2; }
  int local_rank() const override { return rank_; }
  std::string backend() const override { return "thread-pair"; }

  void all_reduce(Tensor& t, dist::ReduceOp op) override {
    auto both = hub_->exchange(rank_, t, "all_reduce");
    Tensor r = op == dist::ReduceOp::max ? maximum(both[0], both[1]) : both[0] + both[1];
    if (op == dist::ReduceOp::avg) r = r / 2.0;
    NoGradGuard ng;
    t.copy_(r.to(t.dtype()).to(t.device()));
  }
  Tensor all_gather(const Tensor& t) override {
    auto both = hub_->exchange(rank_, t, "all_gather");
    NoGradGuard ng;
    return cat({both[0], both[1]}, 0).to(t.device());
  }
  Tensor reduce_scatter(const Tensor& t, dist::ReduceOp op) override {
    Tensor full = t.detach().clone();
    all_reduce(full, op);
    const int64_t n = full.size(0) / 2;
    return full.narrow(0, rank_ * n, n).contiguous();
  }
  void broadcast(Tensor& t, int root) override {
    auto both = hub_->exchange(rank_, t, "broadcast");
    NoGradGuard ng;
    t.copy_(both[root].to(t.device()));
  }
  void barrier() override { hub_->exchange(rank_, Tensor(), "barrier"); }
  std::unique_ptr<Communicator> duplicate(const std::string&) override {
    SIAM_FAIL("thread pair: duplicate() is not supported (one communicator per rank)");
  }

 private:
  std::shared_ptr<PairHub> hub_;
  int rank_;
};

// Runs fn(comm, rank) for ranks 0 and 1 on two threads; after both have ended, rethrows the failure that came
// first (the partner's "rank failed" error only follows it).
inline void run_pair(const std::function<void(dist::Communicator&, int)>& fn, double timeout_s = 30.0) {
  auto hub = std::make_shared<PairHub>(timeout_s);
  std::mutex mu;
  std::exception_ptr first;
  auto body = [&](int rank) {
    try {
      PairCommunicator comm(hub, rank);
      fn(comm, rank);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lk(mu);
        if (!first) first = std::current_exception();
      }
      hub->abort();
    }
  };
  std::thread t1(body, 1);
  body(0);
  t1.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace siam::test

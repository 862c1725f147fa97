// A Communicator that forwards to another one and counts the collectives issued on it, and on each of its
// duplicates separately (DDP duplicates the communicator it is given and reduces on the duplicate, from its
// communication thread: the counters are atomic). Tests use it to prove when collectives ran, e.g. none during
// a no_sync micro-batch.
//
//   test::CountingCommunicator counting(dist::world());
//   dist::DistributedDataParallel ddp(params, buffers, {}, &counting);
//   const test::CollectiveCounts& d = counting.duplicate_counts("world.ddp");  // what DDP issued
//
// set_timeout_s() on the wrapper does not reach the communicator it wraps (the base class keeps the value).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/dist/dist.h"

namespace siam::test {

struct CollectiveCounts {
  explicit CollectiveCounts(std::string n) : name(std::move(n)) {}
  std::string name;  // the communicator's name ("world", "world.ddp", ...)
  std::atomic<int64_t> all_reduce{0}, all_gather{0}, reduce_scatter{0}, broadcast{0}, barrier{0}, duplicate{0};
  // Every collective (duplicate() is one too).
  int64_t total() const { return all_reduce + all_gather + reduce_scatter + broadcast + barrier + duplicate; }
};

class CountingCommunicator final : public dist::Communicator {
 public:
  explicit CountingCommunicator(dist::Communicator& inner) : CountingCommunicator(&inner, nullptr) {}

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  int local_rank() const override { return inner_->local_rank(); }
  std::string backend() const override { return inner_->backend(); }
  bool concurrent_ok() const override { return inner_->concurrent_ok(); }

  void all_reduce(Tensor& t, dist::ReduceOp op) override {
    ++counts_->all_reduce;
    inner_->all_reduce(t, op);
  }
  Tensor all_gather(const Tensor& t) override {
    ++counts_->all_gather;
    return inner_->all_gather(t);
  }
  Tensor reduce_scatter(const Tensor& t, dist::ReduceOp op) override {
    ++counts_->reduce_scatter;
    return inner_->reduce_scatter(t, op);
  }
  void broadcast(Tensor& t, int root) override {
    ++counts_->broadcast;
    inner_->broadcast(t, root);
  }
  void barrier() override {
    ++counts_->barrier;
    inner_->barrier();
  }
  // A counting wrapper of the inner communicator's duplicate, with counters of its own (registered with the
  // root wrapper, so that duplicates of duplicates are found too).
  std::unique_ptr<dist::Communicator> duplicate(const std::string& name) override {
    ++counts_->duplicate;
    std::unique_ptr<dist::Communicator> d = inner_->duplicate(name);
    auto wrapped = std::unique_ptr<CountingCommunicator>(new CountingCommunicator(d.get(), registry_));
    wrapped->owned_ = std::move(d);
    return wrapped;
  }

  const CollectiveCounts& counts() const { return *counts_; }
  // The counters of every communicator duplicated from this one (directly or not), in creation order.
  std::vector<std::shared_ptr<CollectiveCounts>> duplicates() const {
    std::lock_guard<std::mutex> lk(registry_->mu);
    return {registry_->all.begin() + 1, registry_->all.end()};
  }
  // The counters of the one duplicate named `name`; an error when there is none or several.
  const CollectiveCounts& duplicate_counts(const std::string& name) const {
    std::shared_ptr<CollectiveCounts> found;
    for (auto& c : duplicates())
      if (c->name == name) {
        SIAM_CHECK(!found, "CountingCommunicator: several duplicates named '", name, "'");
        found = c;
      }
    SIAM_CHECK(found, "CountingCommunicator: no duplicate named '", name, "'");
    return *found;  // kept alive by the registry
  }

 private:
  struct Registry {
    std::mutex mu;
    std::vector<std::shared_ptr<CollectiveCounts>> all;  // [0]: the root wrapper's
  };
  CountingCommunicator(dist::Communicator* inner, std::shared_ptr<Registry> registry)
      : Communicator(inner->name(), inner->timeout_s()),
        inner_(inner),
        counts_(std::make_shared<CollectiveCounts>(inner->name())),
        registry_(registry ? std::move(registry) : std::make_shared<Registry>()) {
    std::lock_guard<std::mutex> lk(registry_->mu);
    registry_->all.push_back(counts_);
  }

  dist::Communicator* inner_;
  std::unique_ptr<dist::Communicator> owned_;  // a duplicate's inner communicator
  std::shared_ptr<CollectiveCounts> counts_;
  std::shared_ptr<Registry> registry_;
};

}  // namespace siam::test

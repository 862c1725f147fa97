// The bookkeeping of the CUDA caching allocator (kernels/cuda/allocator_core.h) driven by a fake backend:
// made-up addresses (never dereferenced), events completed by hand. Runs on every machine, CUDA build or not.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

#include "kernels/cuda/allocator_core.h"

namespace siam::cuda {
namespace {

constexpr size_t MiB = size_t(1) << 20;

class FakeBackend final : public AllocatorBackend {
 public:
  void* malloc(size_t bytes) override {
    if (used + bytes > capacity) return nullptr;
    const uintptr_t p = next;
    next += bytes + 64 * MiB;  // gaps: segments are never adjacent
    live[p] = bytes;
    used += bytes;
    ++mallocs;
    return reinterpret_cast<void*>(p);
  }
  void free(void* p) override {
    auto it = live.find(reinterpret_cast<uintptr_t>(p));
    ASSERT_NE(it, live.end()) << "free of an address the backend never handed out";
    used -= it->second;
    live.erase(it);
    ++frees;
  }
  void* record_event(void* stream) override {
    const uintptr_t id = ++last_event;
    events[id] = {stream, false};
    return reinterpret_cast<void*>(id);
  }
  bool query_event(void* e) override { return events.at(reinterpret_cast<uintptr_t>(e)).done; }
  void destroy_event(void* e) override { events.erase(reinterpret_cast<uintptr_t>(e)); }
  void synchronize() override {
    for (auto& [id, ev] : events) ev.done = true;
    ++syncs;
  }
  void complete(void* stream) {
    for (auto& [id, ev] : events)
      if (ev.stream == stream) ev.done = true;
  }

  struct Ev {
    void* stream;
    bool done;
  };
  uintptr_t next = uintptr_t(1) << 40;
  uintptr_t last_event = 0;
  std::map<uintptr_t, size_t> live;
  std::map<uintptr_t, Ev> events;
  size_t used = 0, capacity = ~size_t(0), mallocs = 0, frees = 0, syncs = 0;
};

void* const S1 = reinterpret_cast<void*>(0x1);
void* const S2 = reinterpret_cast<void*>(0x2);

uintptr_t addr(void* p) { return reinterpret_cast<uintptr_t>(p); }

TEST(CudaAllocatorLogic, SmallRequestsRoundTo512AndShareA2MiBSegment) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* p1 = a.allocate(1, S1);
  void* p2 = a.allocate(1000, S1);
  void* p3 = a.allocate(100 * 1024, S1);
  EXPECT_EQ(be.mallocs, 1u);
  EXPECT_EQ(be.live.begin()->second, kSmallSegment);
  EXPECT_EQ(a.block_size(p1), 512u);
  EXPECT_EQ(a.block_size(p2), 1024u);
  EXPECT_EQ(a.block_size(p3), 100u * 1024);
  EXPECT_EQ(addr(p2), addr(p1) + 512);
  EXPECT_EQ(addr(p3), addr(p2) + 1024);
  auto s = a.stats();
  EXPECT_EQ(s.allocated_bytes, 512u + 1024 + 100 * 1024);
  EXPECT_EQ(s.reserved_bytes, kSmallSegment);
  EXPECT_EQ(s.active_blocks, 3u);
  EXPECT_EQ(a.allocate(0, S1) != nullptr, true);  // zero bytes still get a (512 B) block
}

TEST(CudaAllocatorLogic, SegmentSizes) {
  EXPECT_EQ(alloc_round_size(0), 512u);
  EXPECT_EQ(alloc_round_size(513), 1024u);
  EXPECT_EQ(alloc_segment_size(512), kSmallSegment);
  EXPECT_EQ(alloc_segment_size(MiB - 512), kSmallSegment);
  EXPECT_EQ(alloc_segment_size(MiB), kLargeSegment);
  EXPECT_EQ(alloc_segment_size(10 * MiB), kLargeSegment);
  EXPECT_EQ(alloc_segment_size(10 * MiB + 512), 12 * MiB);
  EXPECT_EQ(alloc_segment_size(101 * MiB), 102 * MiB);
}

TEST(CudaAllocatorLogic, FreedBlockIsReusedOnTheSameStreamAtOnce) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* p = a.allocate(4 * MiB, S1);
  a.deallocate(p);
  void* q = a.allocate(4 * MiB, S1);
  EXPECT_EQ(q, p);
  EXPECT_EQ(be.mallocs, 1u);
  EXPECT_EQ(a.stats().cache_hits, 1u);
}

TEST(CudaAllocatorLogic, AnotherStreamDoesNotTakeAFreedBlock) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* p = a.allocate(64 * MiB, S1);
  a.deallocate(p);
  void* q = a.allocate(64 * MiB, S2);
  EXPECT_NE(q, p);
  EXPECT_EQ(be.mallocs, 2u);
  EXPECT_EQ(a.cached_bytes(S1), 64 * MiB);
}

TEST(CudaAllocatorLogic, RecordStreamDefersReuseUntilTheEventCompletes) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* p = a.allocate(64 * MiB, S1);  // a segment of its own
  a.record_stream(p, S2);
  a.record_stream(p, S2);  // recorded once
  a.record_stream(p, S1);  // its own stream: nothing to wait for
  a.deallocate(p);
  EXPECT_EQ(be.events.size(), 1u);
  EXPECT_EQ(a.stats().pending_blocks, 1u);
  EXPECT_EQ(a.stats().allocated_bytes, 64 * MiB) << "a pending block still counts as allocated";
  void* q = a.allocate(64 * MiB, S1);
  EXPECT_NE(q, p) << "reused before S2 was done with it";
  a.deallocate(q);
  be.complete(S2);
  void* r = a.allocate(64 * MiB, S1);  // the next call sees the event done
  EXPECT_TRUE(r == p || r == q);
  EXPECT_EQ(a.stats().pending_blocks, 0u);
  EXPECT_TRUE(be.events.empty()) << "completed events are destroyed";
  EXPECT_EQ(be.mallocs, 2u);
}

TEST(CudaAllocatorLogic, LargeBlocksSplitAndCoalesce) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* p1 = a.allocate(3 * MiB, S1);
  void* p2 = a.allocate(3 * MiB, S1);
  void* p3 = a.allocate(3 * MiB, S1);
  EXPECT_EQ(be.mallocs, 1u) << "one 20 MiB segment serves three 3 MiB requests";
  EXPECT_EQ(addr(p2), addr(p1) + 3 * MiB);
  EXPECT_EQ(addr(p3), addr(p2) + 3 * MiB);
  a.deallocate(p2);
  a.deallocate(p1);  // merges with p2's block
  void* p4 = a.allocate(6 * MiB, S1);
  EXPECT_EQ(p4, p1) << "p1 and p2 coalesced into one 6 MiB block";
  a.deallocate(p4);
  a.deallocate(p3);
  EXPECT_EQ(a.cached_bytes(S1), kLargeSegment) << "the whole segment is one free block again";
  a.empty_cache();
  EXPECT_EQ(be.frees, 1u);
  EXPECT_EQ(a.stats().reserved_bytes, 0u);
  EXPECT_TRUE(be.live.empty());
}

TEST(CudaAllocatorLogic, RemaindersOfAtMost1MiBAreNotSplitOff) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* p = a.allocate(11 * MiB, S1);  // 12 MiB segment, 1 MiB left: kept with the block
  EXPECT_EQ(a.block_size(p), 12 * MiB);
  EXPECT_EQ(a.stats().allocated_bytes, 12 * MiB);
}

TEST(CudaAllocatorLogic, SmallAndLargePoolsAreSeparate) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* big = a.allocate(30 * MiB, S1);
  a.deallocate(big);
  void* small = a.allocate(4096, S1);
  EXPECT_EQ(be.mallocs, 2u) << "a small request takes a 2 MiB segment, not a piece of the cached large block";
  a.deallocate(small);
}

TEST(CudaAllocatorLogic, EmptyCacheKeepsSegmentsWithLiveBlocks) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* x = a.allocate(1000, S1);
  void* y = a.allocate(1000, S1);
  a.deallocate(x);
  a.empty_cache();
  EXPECT_EQ(be.frees, 0u);
  a.deallocate(y);
  a.empty_cache();
  EXPECT_EQ(be.frees, 1u);
  EXPECT_EQ(a.stats().segments, 0u);
}

TEST(CudaAllocatorLogic, PeakAndReset) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  void* x = a.allocate(8 * MiB, S1);
  void* y = a.allocate(8 * MiB, S1);
  a.deallocate(x);
  auto s = a.stats();
  EXPECT_EQ(s.allocated_bytes, 8 * MiB);
  EXPECT_EQ(s.peak_allocated_bytes, 16 * MiB);
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_allocated_bytes, 8 * MiB);
  a.deallocate(y);
  EXPECT_EQ(a.stats().allocated_bytes, 0u);
  EXPECT_EQ(a.stats().requests, 2u);
}

TEST(CudaAllocatorLogic, OutOfMemoryReleasesTheCacheAndRetriesOnce) {
  FakeBackend be;
  be.capacity = 40 * MiB;
  CachingAllocatorCore a(&be);
  void* p = a.allocate(5 * MiB, S1);  // a 20 MiB segment
  a.deallocate(p);
  void* q = a.allocate(30 * MiB, S1);  // 20 cached + 30 > 40: release the cache, retry
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(a.stats().oom_retries, 1u);
  EXPECT_EQ(be.syncs, 1u);
  EXPECT_EQ(be.frees, 1u);
  EXPECT_EQ(a.allocate(30 * MiB, S1), nullptr) << "still too much: nullptr, the caller throws";
  EXPECT_EQ(a.stats().allocated_bytes, 30 * MiB);
}

TEST(CudaAllocatorLogic, ATrainingLoopStopsCallingMallocAfterTheFirstStep) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  const std::vector<size_t> sizes = {4, 512, 3000, 65536, MiB - 1, MiB, 3 * MiB + 7, 12 * MiB, 40 * MiB, 100};
  size_t after_first = 0;
  for (int step = 0; step < 10; ++step) {
    std::vector<void*> live;
    for (size_t s : sizes) live.push_back(a.allocate(s, S1));
    std::set<uintptr_t> distinct;
    for (void* p : live) distinct.insert(addr(p));
    ASSERT_EQ(distinct.size(), live.size()) << "two live blocks share an address";
    for (size_t i = 0; i < live.size(); i += 2) a.deallocate(live[i]);  // out of order frees
    for (size_t i = 1; i < live.size(); i += 2) a.deallocate(live[i]);
    if (step == 0) after_first = be.mallocs;
  }
  EXPECT_EQ(be.mallocs, after_first);
  EXPECT_EQ(a.stats().allocated_bytes, 0u);
  a.empty_cache();
  EXPECT_TRUE(be.live.empty()) << "every segment coalesced back to one free block";
}

TEST(CudaAllocatorLogic, UnknownPointersAreRejected) {
  FakeBackend be;
  CachingAllocatorCore a(&be);
  int x = 0;
  EXPECT_THROW(a.deallocate(&x), std::invalid_argument);
  a.deallocate(nullptr);  // ignored
}

}  // namespace
}  // namespace siam::cuda

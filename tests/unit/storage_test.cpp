// The caching host allocator behind cpu_alloc/cpu_free (engine/core/storage.cpp): reuse of same-class
// blocks, alignment, the cache limit, cpu_empty_cache, the statistics, and a multi-threaded stress run
// that checks no block is ever handed out to two owners at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "engine/core/storage.h"
#include "engine/tensor.h"

namespace siam {
namespace {

// Restores the cache limit and empties the cache around each test, so tests do not see each other's blocks.
class CpuAllocator : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_limit_ = cpu_cache_limit();
    cpu_set_cache_limit(size_t(1) << 30);
    cpu_empty_cache();
  }
  void TearDown() override {
    cpu_empty_cache();
    cpu_set_cache_limit(saved_limit_);
  }
  size_t saved_limit_ = 0;
};

bool aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

TEST_F(CpuAllocator, SameSizeClassReusesTheBlock) {
  const size_t n = size_t(3) << 20;  // 3 MiB
  void* a = cpu_alloc(n);
  ASSERT_TRUE(aligned64(a));
  std::memset(a, 1, n);
  cpu_free(a);
  const CpuAllocStats before = cpu_alloc_stats();
  EXPECT_GE(before.cached_bytes, n);
  void* b = cpu_alloc(n);
  EXPECT_EQ(a, b);
  // A size that rounds to the same 4 KiB class is the same block too.
  cpu_free(b);
  void* c = cpu_alloc(n - 100);
  EXPECT_EQ(a, c);
  const CpuAllocStats after = cpu_alloc_stats();
  EXPECT_EQ(after.system_allocs, before.system_allocs);
  EXPECT_EQ(after.cache_hits, before.cache_hits + 2);
  // Another class does not take it.
  void* d = cpu_alloc(n + kCpuCacheGranule);
  EXPECT_NE(d, c);
  cpu_free(c);
  cpu_free(d);
}

TEST_F(CpuAllocator, TensorsReuseFreedStorage) {
  const void* first = nullptr;
  {
    Tensor t = empty({1024, 1024});  // 4 MiB
    first = t.raw_data();
  }
  Tensor u = empty({1024, 1024});
  EXPECT_EQ(u.raw_data(), first);
}

TEST_F(CpuAllocator, AlignmentOfEverySize) {
  std::vector<void*> ps;
  for (size_t n : {size_t(0), size_t(1), size_t(3), size_t(63), size_t(64), size_t(65), size_t(4095),
                   kCpuCacheMinBytes - 1, kCpuCacheMinBytes, kCpuCacheMinBytes + 1, size_t(1) << 20,
                   (size_t(1) << 20) + 7}) {
    void* p = cpu_alloc(n);
    EXPECT_TRUE(aligned64(p)) << n;
    if (n) std::memset(p, 0xab, n);
    ps.push_back(p);
  }
  for (void* p : ps) cpu_free(p);
  cpu_free(nullptr);  // a no-op, like free
}

TEST_F(CpuAllocator, SmallBlocksAreNotCached) {
  void* p = cpu_alloc(1000);
  cpu_free(p);
  EXPECT_EQ(cpu_alloc_stats().cached_bytes, 0u);
}

TEST_F(CpuAllocator, LimitBoundsTheCache) {
  const size_t mb = size_t(1) << 20;
  cpu_set_cache_limit(3 * mb);
  std::vector<void*> ps;
  for (int i = 0; i < 5; ++i) ps.push_back(cpu_alloc(mb));
  const CpuAllocStats before = cpu_alloc_stats();
  for (void* p : ps) cpu_free(p);
  CpuAllocStats s = cpu_alloc_stats();
  EXPECT_EQ(s.cached_bytes, 3 * mb);
  EXPECT_EQ(s.system_frees, before.system_frees + 2);
  EXPECT_EQ(s.cache_limit, 3 * mb);

  // Lowering the limit gives back what no longer fits; 0 disables caching altogether.
  cpu_set_cache_limit(mb);
  EXPECT_EQ(cpu_alloc_stats().cached_bytes, mb);
  cpu_set_cache_limit(0);
  EXPECT_EQ(cpu_alloc_stats().cached_bytes, 0u);
  void* p = cpu_alloc(mb);
  cpu_free(p);
  EXPECT_EQ(cpu_alloc_stats().cached_bytes, 0u);
}

TEST_F(CpuAllocator, EmptyCacheReturnsEverything) {
  for (size_t n : {size_t(100) << 10, size_t(1) << 20, size_t(5) << 20}) cpu_free(cpu_alloc(n));
  CpuAllocStats s = cpu_alloc_stats();
  EXPECT_GT(s.cached_bytes, 0u);
  const size_t frees = s.system_frees;
  cpu_empty_cache();
  s = cpu_alloc_stats();
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.system_frees, frees + 3);
}

TEST_F(CpuAllocator, StatsTrackLiveAndPeakBytes) {
  const size_t mb = size_t(1) << 20;
  const CpuAllocStats s0 = cpu_alloc_stats();
  cpu_reset_peak_stats();
  void* a = cpu_alloc(2 * mb);
  void* b = cpu_alloc(mb + 1);  // rounds up to 1 MiB + 4 KiB
  CpuAllocStats s1 = cpu_alloc_stats();
  EXPECT_EQ(s1.allocated_bytes - s0.allocated_bytes, 3 * mb + kCpuCacheGranule);
  EXPECT_GE(s1.peak_allocated_bytes, s1.allocated_bytes);
  EXPECT_EQ(s1.system_allocs, s0.system_allocs + 2);
  cpu_free(a);
  cpu_free(b);
  CpuAllocStats s2 = cpu_alloc_stats();
  EXPECT_EQ(s2.allocated_bytes, s0.allocated_bytes);
  EXPECT_GE(s2.peak_allocated_bytes, s0.allocated_bytes + 3 * mb);
  EXPECT_EQ(s2.cached_bytes, 3 * mb + kCpuCacheGranule);
  cpu_reset_peak_stats();
  EXPECT_EQ(cpu_alloc_stats().peak_allocated_bytes, cpu_alloc_stats().allocated_bytes);
}

// Threads allocate blocks from a few shared size classes (so they compete for the same bins), register each
// pointer in a global set (a second owner would find it already there), stamp it with their id, check the
// stamp before freeing, and free.
TEST_F(CpuAllocator, ThreadsNeverShareABlock) {
  cpu_set_cache_limit(size_t(64) << 20);
  constexpr int kThreads = 8, kIters = 2000;
  const size_t sizes[] = {64 << 10, 128 << 10, (256 << 10) + 100, 1 << 20, 100, 4000};
  std::mutex mu;
  std::set<void*> live;
  std::atomic<int> duplicates{0}, corrupted{0}, misaligned{0};
  auto worker = [&](int tid) {
    uint32_t state = 777u + tid;
    std::vector<std::pair<void*, size_t>> mine;
    for (int it = 0; it < kIters; ++it) {
      state = state * 1664525u + 1013904223u;
      if (mine.size() < 6 && (state >> 28) < 10) {
        const size_t n = sizes[(state >> 8) % 6];
        void* p = cpu_alloc(n);
        misaligned += !aligned64(p);
        {
          std::lock_guard<std::mutex> lock(mu);
          duplicates += !live.insert(p).second;
        }
        std::memset(p, tid + 1, n);
        mine.push_back({p, n});
      } else if (!mine.empty()) {
        auto [p, n] = mine.back();
        mine.pop_back();
        const unsigned char* c = static_cast<const unsigned char*>(p);
        if (c[0] != tid + 1 || c[n / 2] != tid + 1 || c[n - 1] != tid + 1) ++corrupted;
        {
          std::lock_guard<std::mutex> lock(mu);
          live.erase(p);
        }
        cpu_free(p);
      }
    }
    for (auto [p, n] : mine) {
      {
        std::lock_guard<std::mutex> lock(mu);
        live.erase(p);
      }
      cpu_free(p);
    }
  };
  const size_t live_before = cpu_alloc_stats().allocated_bytes;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(corrupted.load(), 0);
  EXPECT_EQ(misaligned.load(), 0);
  const CpuAllocStats s = cpu_alloc_stats();
  EXPECT_GT(s.cache_hits, 0u);
  EXPECT_LE(s.cached_bytes, size_t(64) << 20);
  // Other tests' tensors may be alive, but this test's blocks are all back.
  EXPECT_EQ(s.allocated_bytes, live_before);
}

}  // namespace
}  // namespace siam

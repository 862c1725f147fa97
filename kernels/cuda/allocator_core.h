// The bookkeeping of the stream-ordered caching allocator for device memory, in plain C++ with no CUDA
// call: every device operation goes through an AllocatorBackend (kernels/cuda/allocator.cu gives the CUDA
// one; tests/unit/cuda_allocator_logic_test.cpp gives a fake one with made-up addresses, so the logic is
// tested on machines without a GPU). Addresses are never dereferenced here.
//
// Sizes. Every request is rounded up to a multiple of kAllocRound (512 B).
//   small  (rounded size < 1 MiB): cut from 2 MiB segments, split down to 512 B pieces;
//   large  (>= 1 MiB): a segment of 20 MiB for requests up to 10 MiB, else the request rounded up to 2 MiB;
//          a large block is split when more than 1 MiB would be left over.
// Small and large blocks live in separate pools, so small tensors never fragment large segments.
// Reuse is best fit: the smallest free block of the same pool and stream that is large enough.
// Freeing merges a block with its free neighbours in the same segment (coalescing), so a whole segment comes
// back as one block that empty_cache() can return to the backend.
//
// Streams. A block belongs to the stream it was allocated on. A freed block goes back to its stream's pool at
// once: later work on that stream is ordered after every use already enqueued there, so reusing it
// immediately is safe. Another stream never takes it from that pool. When a block was also used on other
// streams (record_stream), freeing it records an event on each of them, and the block returns to the pool
// only when all those events have completed (checked at the next allocate/free/empty_cache).
//
// Out of memory: when the backend's malloc fails, the allocator synchronizes the device, releases every
// cached segment that is wholly free and tries once more; allocate() returns nullptr when that fails too.
//
// Thread-safe (one mutex). Stats count block sizes (rounded), not requested bytes.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace siam::cuda {

constexpr size_t kAllocRound = 512;
constexpr size_t kSmallSize = size_t(1) << 20;       // 1 MiB: requests below are small
constexpr size_t kSmallSegment = size_t(2) << 20;    // 2 MiB segments for small blocks
constexpr size_t kLargeSegment = size_t(20) << 20;   // 20 MiB segments for requests of 1 to 10 MiB
constexpr size_t kMinLargeAlloc = size_t(10) << 20;  // above this, a segment of its own
constexpr size_t kRoundLarge = size_t(2) << 20;      // ... rounded up to 2 MiB

// What the allocator needs from a device. Streams and events are opaque handles.
class AllocatorBackend {
 public:
  virtual ~AllocatorBackend() = default;
  virtual void* malloc(size_t bytes) = 0;  // nullptr when out of memory (any other failure throws)
  virtual void free(void* p) = 0;
  virtual void* record_event(void* stream) = 0;  // an event recorded on `stream` now
  virtual bool query_event(void* event) = 0;     // true once the event has completed
  virtual void destroy_event(void* event) = 0;
  virtual void synchronize() = 0;  // waits for all work on the device
};

struct DeviceAllocStats {
  size_t allocated_bytes = 0;       // live blocks (rounded sizes), including those waiting for events
  size_t reserved_bytes = 0;        // all segments obtained from the backend
  size_t peak_allocated_bytes = 0;  // high-water marks (reset_peak sets them to the current values)
  size_t peak_reserved_bytes = 0;
  size_t device_mallocs = 0;  // backend malloc calls that succeeded (cudaMalloc)
  size_t device_frees = 0;    // segments given back (cudaFree)
  size_t requests = 0;        // allocate() calls
  size_t cache_hits = 0;      // requests served from cached blocks
  size_t oom_retries = 0;     // mallocs retried after releasing the cache
  size_t active_blocks = 0;
  size_t segments = 0;
  size_t pending_blocks = 0;  // freed, waiting for events of other streams
};

inline size_t alloc_round_size(size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  return (nbytes + kAllocRound - 1) / kAllocRound * kAllocRound;
}
// Bytes asked from the backend for a block of `size` (rounded) bytes.
inline size_t alloc_segment_size(size_t size) {
  if (size < kSmallSize) return kSmallSegment;
  if (size <= kMinLargeAlloc) return kLargeSegment;
  return (size + kRoundLarge - 1) / kRoundLarge * kRoundLarge;
}

class CachingAllocatorCore {
 public:
  explicit CachingAllocatorCore(AllocatorBackend* backend) : backend_(backend) {}
  // Gives every segment back (tests; the process-wide allocators are never destroyed).
  ~CachingAllocatorCore() {
    for (auto& [ev, b] : events_) backend_->destroy_event(ev);
    std::vector<Block*> all;
    for (auto* pool : {&small_, &large_})
      for (Block* b : *pool) all.push_back(b);
    for (auto& [p, b] : active_) all.push_back(b);
    for (auto& [ev, b] : events_) all.push_back(b);
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    for (Block* b : all)
      if (!b->prev) backend_->free(reinterpret_cast<void*>(b->ptr));
    for (Block* b : all) delete b;
  }
  CachingAllocatorCore(const CachingAllocatorCore&) = delete;
  CachingAllocatorCore& operator=(const CachingAllocatorCore&) = delete;

  // A block of at least nbytes for use on `stream`; nullptr when the device is out of memory.
  void* allocate(size_t nbytes, void* stream) {
    std::lock_guard<std::mutex> lock(mu_);
    process_events();
    ++stats_.requests;
    const size_t size = alloc_round_size(nbytes);
    const bool small = size < kSmallSize;
    Pool& pool = small ? small_ : large_;
    Block* b = take_free(pool, stream, size);
    if (b) {
      ++stats_.cache_hits;
    } else {
      const size_t seg = alloc_segment_size(size);
      void* p = backend_->malloc(seg);
      if (!p) {
        ++stats_.oom_retries;
        backend_->synchronize();
        process_events();
        release_free_segments();
        p = backend_->malloc(seg);
        if (!p) return nullptr;
      }
      ++stats_.device_mallocs;
      ++stats_.segments;
      stats_.reserved_bytes += seg;
      stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
      b = new Block(reinterpret_cast<uintptr_t>(p), seg, stream, small);
    }
    // Split off the rest when it is worth keeping apart.
    const size_t rest = b->size - size;
    if (small ? rest >= kAllocRound : rest > kSmallSize) {
      Block* r = new Block(b->ptr + size, rest, stream, small);
      r->prev = b;
      r->next = b->next;
      if (b->next) b->next->prev = r;
      b->next = r;
      b->size = size;
      pool.insert(r);
    }
    b->state = State::active;
    active_.emplace(b->ptr, b);
    stats_.allocated_bytes += b->size;
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    ++stats_.active_blocks;
    return reinterpret_cast<void*>(b->ptr);
  }

  // Returns a block from allocate(); nullptr is ignored. Throws std::invalid_argument for unknown pointers.
  void deallocate(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_.find(reinterpret_cast<uintptr_t>(p));
    if (it == active_.end()) throw std::invalid_argument("CachingAllocatorCore::deallocate: unknown pointer");
    Block* b = it->second;
    active_.erase(it);
    --stats_.active_blocks;
    if (b->other_streams.empty()) {
      stats_.allocated_bytes -= b->size;
      free_block(b);
    } else {
      b->state = State::pending;
      for (void* s : b->other_streams) {
        events_.emplace_back(backend_->record_event(s), b);
        ++b->pending_events;
      }
      b->other_streams.clear();
      ++stats_.pending_blocks;
    }
    process_events();
  }

  // Marks a live block as used by `stream` too (as torch's record_stream): its reuse then waits for `stream`.
  void record_stream(void* p, void* stream) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_.find(reinterpret_cast<uintptr_t>(p));
    if (it == active_.end()) throw std::invalid_argument("CachingAllocatorCore::record_stream: unknown pointer");
    Block* b = it->second;
    if (stream == b->stream) return;
    if (std::find(b->other_streams.begin(), b->other_streams.end(), stream) == b->other_streams.end())
      b->other_streams.push_back(stream);
  }

  // Gives every wholly free segment back to the backend.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    process_events();
    release_free_segments();
  }

  DeviceAllocStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
    stats_.peak_reserved_bytes = stats_.reserved_bytes;
  }
  // Size of the block behind a live pointer (0 when unknown).
  size_t block_size(void* p) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_.find(reinterpret_cast<uintptr_t>(p));
    return it == active_.end() ? 0 : it->second->size;
  }
  // Free cached bytes (in the pools) for a stream, or for all streams with all_streams = true.
  size_t cached_bytes(void* stream, bool all_streams = false) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const Pool* pool : {&small_, &large_})
      for (const Block* b : *pool)
        if (all_streams || b->stream == stream) n += b->size;
    return n;
  }

 private:
  enum class State : uint8_t { free, active, pending };
  struct Block {
    Block(uintptr_t p, size_t s, void* st, bool sm) : ptr(p), size(s), stream(st), small(sm) {}
    uintptr_t ptr;
    size_t size;
    void* stream;
    bool small;
    State state = State::free;
    Block* prev = nullptr;  // neighbours in the same segment
    Block* next = nullptr;
    int pending_events = 0;
    std::vector<void*> other_streams;
  };
  struct Order {  // by stream, then size, then address: lower_bound finds the best fit on a stream
    bool operator()(const Block* a, const Block* b) const {
      if (a->stream != b->stream) return std::less<void*>()(a->stream, b->stream);
      if (a->size != b->size) return a->size < b->size;
      return a->ptr < b->ptr;
    }
  };
  using Pool = std::set<Block*, Order>;

  Block* take_free(Pool& pool, void* stream, size_t size) {
    Block key(0, size, stream, false);
    auto it = pool.lower_bound(&key);
    if (it == pool.end() || (*it)->stream != stream) return nullptr;
    Block* b = *it;
    pool.erase(it);
    return b;
  }

  // Marks b free, merges it with free neighbours and puts the result in its pool.
  void free_block(Block* b) {
    Pool& pool = b->small ? small_ : large_;
    b->state = State::free;
    if (b->prev && b->prev->state == State::free) {
      Block* p = b->prev;
      pool.erase(p);
      p->size += b->size;
      p->next = b->next;
      if (b->next) b->next->prev = p;
      delete b;
      b = p;
    }
    if (b->next && b->next->state == State::free) {
      Block* n = b->next;
      pool.erase(n);
      b->size += n->size;
      b->next = n->next;
      if (n->next) n->next->prev = b;
      delete n;
    }
    pool.insert(b);
  }

  void process_events() {
    for (size_t i = 0; i < events_.size();) {
      auto [ev, b] = events_[i];
      if (!backend_->query_event(ev)) {
        ++i;
        continue;
      }
      backend_->destroy_event(ev);
      events_.erase(events_.begin() + static_cast<std::ptrdiff_t>(i));
      if (--b->pending_events == 0) {
        --stats_.pending_blocks;
        stats_.allocated_bytes -= b->size;
        free_block(b);
      }
    }
  }

  void release_free_segments() {
    for (Pool* pool : {&small_, &large_}) {
      for (auto it = pool->begin(); it != pool->end();) {
        Block* b = *it;
        if (b->prev || b->next) {
          ++it;
          continue;
        }
        backend_->free(reinterpret_cast<void*>(b->ptr));
        ++stats_.device_frees;
        --stats_.segments;
        stats_.reserved_bytes -= b->size;
        it = pool->erase(it);
        delete b;
      }
    }
  }

  AllocatorBackend* backend_;
  mutable std::mutex mu_;
  Pool small_, large_;
  std::unordered_map<uintptr_t, Block*> active_;
  std::vector<std::pair<void*, Block*>> events_;
  DeviceAllocStats stats_;
};

}  // namespace siam::cuda

// Reference-counted memory block. CPU blocks are 64-byte aligned; CUDA blocks come from the CUDA backend's
// stream-ordered caching allocator (kernels/cuda/allocator.h), pinned host blocks from its pinned cache.
#pragma once
#include <cstddef>
#include <memory>

#include "engine/core/device.h"

namespace siam {

class Storage {
 public:
  Storage(size_t nbytes, Device device);  // allocates; throws siam::Error when the device is unusable
  // pinned = true (CPU only): page-locked host memory (cudaHostAlloc, cached) that asynchronous copies can
  // use; throws siam::Error when no CUDA device is present.
  Storage(size_t nbytes, Device device, bool pinned);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool pinned() const { return pinned_; }

  static std::shared_ptr<Storage> make(size_t nbytes, Device device) {
    return std::make_shared<Storage>(nbytes, device);
  }
  static std::shared_ptr<Storage> make_pinned(size_t nbytes) { return std::make_shared<Storage>(nbytes, kCPU, true); }

 private:
  void allocate();
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool pinned_ = false;
};

// Byte copies between any two devices (host<->device when the CUDA backend is built), on the current stream
// of the CUDA device involved. non_blocking = false returns once the bytes are in place; true lets a copy
// into or out of pinned memory run on after the call (the caller synchronizes the stream before reading the
// destination or writing the source; Tensor::to records the pinned block's stream). From pageable memory a
// host to device copy never reads the source after the call returns.
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes, bool non_blocking = false);

// 64-byte aligned host allocation (what CPU storages use), through a caching allocator:
//  - blocks of kCpuCacheMinBytes and up are rounded up to a multiple of kCpuCacheGranule and, when freed,
//    kept in a bin of that exact size class, to be handed out again by the next cpu_alloc of that class
//    (training repeats the same shapes every step, so this skips the page faults of fresh memory);
//  - smaller blocks go straight to aligned_alloc/free;
//  - at most cpu_cache_limit() bytes stay cached; a freed block that does not fit goes back to the system.
//    The limit comes from the environment variable SIAM_CPU_CACHE_BYTES (bytes, optional K/M/G suffix;
//    0 disables caching), else min(1 GiB, physical memory / 8).
// Thread-safe. cpu_free must only receive pointers from cpu_alloc (or nullptr).
void* cpu_alloc(size_t nbytes);
void cpu_free(void* p);

constexpr size_t kCpuCacheMinBytes = size_t(64) << 10;  // 64 KiB
constexpr size_t kCpuCacheGranule = size_t(4) << 10;    // 4 KiB

struct CpuAllocStats {
  size_t allocated_bytes = 0;       // live blocks (by size class; small blocks rounded to 64 bytes)
  size_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes (see cpu_reset_peak_stats)
  size_t cached_bytes = 0;          // freed blocks kept for reuse
  size_t cache_limit = 0;           // cpu_cache_limit()
  size_t system_allocs = 0;         // calls that reached aligned_alloc
  size_t system_frees = 0;          // blocks given back to the system
  size_t cache_hits = 0;            // cpu_alloc calls served from the cache
};
CpuAllocStats cpu_alloc_stats();
void cpu_reset_peak_stats();  // peak_allocated_bytes = allocated_bytes
// Gives every cached block back to the system.
void cpu_empty_cache();
size_t cpu_cache_limit();
// Changes the limit (0 disables caching); cached blocks beyond the new limit are given back at once.
void cpu_set_cache_limit(size_t bytes);

}  // namespace siam

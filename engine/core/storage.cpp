#include "engine/core/storage.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "engine/core/error.h"

#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"
#endif

namespace siam {

namespace {

// Every block carries a 64-byte header just before the pointer handed out, so cpu_free knows the block's
// size class without a lookup, and the pointer stays 64-byte aligned.
constexpr size_t kHeader = 64;
constexpr uint64_t kMagicSmall = 0x5349414d534d4c4cull;  // "SIAMSMLL"
constexpr uint64_t kMagicLarge = 0x5349414d4c52474eull;  // "SIAMLRGN"
struct BlockHeader {
  uint64_t magic;
  uint64_t class_bytes;  // usable bytes after the header
};
static_assert(sizeof(BlockHeader) <= kHeader);

size_t parse_bytes(const char* s, bool* ok) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  *ok = errno == 0 && end != s;
  if (!*ok) return 0;
  size_t mult = 1;
  if (*end == 'k' || *end == 'K') mult = size_t(1) << 10, ++end;
  else if (*end == 'm' || *end == 'M') mult = size_t(1) << 20, ++end;
  else if (*end == 'g' || *end == 'G') mult = size_t(1) << 30, ++end;
  if (*end == 'i' || *end == 'I') ++end;
  if (*end == 'b' || *end == 'B') ++end;
  *ok = *end == '\0';
  return static_cast<size_t>(v) * mult;
}

size_t default_cache_limit() {
  if (const char* env = std::getenv("SIAM_CPU_CACHE_BYTES")) {
    bool ok = false;
    size_t v = parse_bytes(env, &ok);
    if (!ok) SIAM_FAIL("SIAM_CPU_CACHE_BYTES='", env, "': expected a byte count such as 0, 268435456 or 512M");
    return v;
  }
  size_t limit = size_t(1) << 30;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) limit = std::min(limit, static_cast<size_t>(pages) * static_cast<size_t>(page) / 8);
  return limit;
}

class CpuCache {
 public:
  CpuCache() : limit_(default_cache_limit()) {}

  void* alloc(size_t nbytes) {
    size_t cls = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
    if (cls < kCpuCacheMinBytes) return with_header(system_alloc(cls), cls, kMagicSmall);
    cls = (nbytes + kCpuCacheGranule - 1) / kCpuCacheGranule * kCpuCacheGranule;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = bins_.find(cls);
      if (it != bins_.end() && !it->second.empty()) {
        char* base = it->second.back();
        it->second.pop_back();
        cached_ -= cls;
        hits_.fetch_add(1, std::memory_order_relaxed);
        note_alloc(cls);
        return base + kHeader;
      }
    }
    return with_header(system_alloc(cls), cls, kMagicLarge);
  }

  void free(void* p) {
    if (!p) return;
    char* base = static_cast<char*>(p) - kHeader;
    BlockHeader h;
    std::memcpy(&h, base, sizeof h);
    assert((h.magic == kMagicSmall || h.magic == kMagicLarge) && "cpu_free: pointer not from cpu_alloc");
    allocated_.fetch_sub(h.class_bytes, std::memory_order_relaxed);
    if (h.magic == kMagicLarge) {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + h.class_bytes <= limit_) {
        bins_[h.class_bytes].push_back(base);
        cached_ += h.class_bytes;
        return;
      }
    }
    system_free(base);
  }

  void empty_cache() { trim_to(0); }

  size_t limit() {
    std::lock_guard<std::mutex> lock(mu_);
    return limit_;
  }
  void set_limit(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      limit_ = bytes;
    }
    trim_to(bytes);
  }

  CpuAllocStats stats() {
    CpuAllocStats s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      s.cached_bytes = cached_;
      s.cache_limit = limit_;
    }
    s.allocated_bytes = allocated_.load(std::memory_order_relaxed);
    s.peak_allocated_bytes = peak_.load(std::memory_order_relaxed);
    s.system_allocs = system_allocs_.load(std::memory_order_relaxed);
    s.system_frees = system_frees_.load(std::memory_order_relaxed);
    s.cache_hits = hits_.load(std::memory_order_relaxed);
    return s;
  }
  void reset_peak() { peak_.store(allocated_.load(std::memory_order_relaxed), std::memory_order_relaxed); }

 private:
  void note_alloc(size_t cls) {
    const size_t now = allocated_.fetch_add(cls, std::memory_order_relaxed) + cls;
    size_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  char* system_alloc(size_t cls) {
    void* p = std::aligned_alloc(64, kHeader + cls);
    if (!p) {  // cached blocks of other sizes may be what stands in the way
      empty_cache();
      p = std::aligned_alloc(64, kHeader + cls);
    }
    if (!p) SIAM_FAIL("out of host memory: could not allocate ", cls, " bytes");
    system_allocs_.fetch_add(1, std::memory_order_relaxed);
    return static_cast<char*>(p);
  }
  void system_free(char* base) {
    std::free(base);
    system_frees_.fetch_add(1, std::memory_order_relaxed);
  }

  void* with_header(char* base, size_t cls, uint64_t magic) {
    const BlockHeader h{magic, cls};
    std::memcpy(base, &h, sizeof h);
    note_alloc(cls);
    return base + kHeader;
  }

  // Gives cached blocks back until at most `target` bytes stay cached (largest classes first).
  void trim_to(size_t target) {
    std::vector<char*> release;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ <= target) return;
      std::vector<size_t> classes;
      for (auto& [cls, blocks] : bins_)
        if (!blocks.empty()) classes.push_back(cls);
      std::sort(classes.begin(), classes.end(), std::greater<>());
      for (size_t cls : classes) {
        auto& blocks = bins_[cls];
        while (!blocks.empty() && cached_ > target) {
          release.push_back(blocks.back());
          blocks.pop_back();
          cached_ -= cls;
        }
        if (blocks.empty()) bins_.erase(cls);
        if (cached_ <= target) break;
      }
    }
    for (char* b : release) system_free(b);
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<char*>> bins_;  // size class -> free blocks (LIFO)
  size_t cached_ = 0;
  size_t limit_;
  std::atomic<size_t> allocated_{0}, peak_{0}, system_allocs_{0}, system_frees_{0}, hits_{0};
};

// Never destroyed: storages held by static objects may be freed during static destruction.
CpuCache& cpu_cache() {
  static CpuCache* cache = new CpuCache();
  return *cache;
}

}  // namespace

void* cpu_alloc(size_t nbytes) { return cpu_cache().alloc(nbytes); }
void cpu_free(void* p) { cpu_cache().free(p); }
CpuAllocStats cpu_alloc_stats() { return cpu_cache().stats(); }
void cpu_reset_peak_stats() { cpu_cache().reset_peak(); }
void cpu_empty_cache() { cpu_cache().empty_cache(); }
size_t cpu_cache_limit() { return cpu_cache().limit(); }
void cpu_set_cache_limit(size_t bytes) { cpu_cache().set_limit(bytes); }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) { allocate(); }

void Storage::allocate() {
  const size_t nbytes = nbytes_;
  const Device device = device_;
  if (device.is_cpu()) {
    data_ = cpu_alloc(nbytes);
    return;
  }
#if defined(SIAM_WITH_CUDA)
  data_ = cuda::device_alloc(nbytes, device.index);
#else
  SIAM_FAIL("device ", device.str(), " requested, but this build of siam has no CUDA backend (configure with SIAM_CUDA=ON)");
#endif
}

Storage::Storage(size_t nbytes, Device device, bool pinned) : nbytes_(nbytes), device_(device), pinned_(pinned) {
  if (!pinned) {
    allocate();
    return;
  }
  SIAM_CHECK(device.is_cpu(), "pinned memory is host memory, but device ", device.str(), " was requested");
#if defined(SIAM_WITH_CUDA)
  data_ = cuda::pinned_alloc(nbytes);
#else
  SIAM_FAIL("pin_memory: pinned host memory needs the CUDA backend (this build has none; configure with SIAM_CUDA=ON)");
#endif
}

Storage::~Storage() {
  if (!data_) return;
#if defined(SIAM_WITH_CUDA)
  if (pinned_) {
    cuda::pinned_free(data_);
    return;
  }
#endif
  if (device_.is_cpu()) {
    cpu_free(data_);
    return;
  }
#if defined(SIAM_WITH_CUDA)
  cuda::device_free(data_, device_.index);
#endif
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes, bool non_blocking) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#if defined(SIAM_WITH_CUDA)
  if (dst_dev.is_cuda() && src_dev.is_cuda() && dst_dev.index != src_dev.index) {
    cuda::copy_peer(dst, dst_dev.index, src, src_dev.index, nbytes);
    if (!non_blocking) {
      cuda::DeviceGuard g(dst_dev.index);
      cuda::synchronize_stream(cuda::current_stream(dst_dev.index));
    }
    return;
  }
  const int dev = dst_dev.is_cuda() ? dst_dev.index : src_dev.index;
  cuda::copy_bytes(dst, dst_dev.is_cuda(), src, src_dev.is_cuda(), nbytes, dev, !non_blocking);
#else
  (void)non_blocking;
  SIAM_FAIL("copy between ", src_dev.str(), " and ", dst_dev.str(), " needs the CUDA backend");
#endif
}

}  // namespace siam

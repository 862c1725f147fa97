// The CUDA side of the caching allocators (see allocator.h): the backend that CachingAllocatorCore drives
// (cudaMalloc, cudaFree, events), one core per device, and the pinned host cache (cudaHostAlloc).
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/allocator.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"

namespace siam::cuda {

namespace {

class CudaBackend final : public AllocatorBackend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  void* malloc(size_t bytes) override {
    DeviceGuard g(device_);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky, but clear it so the next launch check does not see it
      return nullptr;
    }
    SIAM_CUDA_CHECK(e);
    return p;
  }
  void free(void* p) override {
    DeviceGuard g(device_);
    SIAM_CUDA_CHECK(cudaFree(p));
  }
  void* record_event(void* stream) override {
    DeviceGuard g(device_);
    cudaEvent_t ev = nullptr;
    SIAM_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    SIAM_CUDA_CHECK(cudaEventRecord(ev, static_cast<cudaStream_t>(stream)));
    return ev;
  }
  bool query_event(void* event) override {
    cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (e == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    SIAM_CUDA_CHECK(e);
    return true;
  }
  void destroy_event(void* event) override { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }
  void synchronize() override {
    DeviceGuard g(device_);
    SIAM_CUDA_CHECK(cudaDeviceSynchronize());
  }

 private:
  int device_;
};

struct DeviceAllocator {
  explicit DeviceAllocator(int device) : backend(device), core(&backend) {}
  CudaBackend backend;
  CachingAllocatorCore core;
};

struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<DeviceAllocator>> devices;
};
// Never destroyed: storages held by static objects may be freed during static destruction.
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

void check_device(int device) {
  int n = device_count();
  SIAM_CHECK(n > 0, "device cuda:", device, " requested, but no CUDA device is present on this machine");
  SIAM_CHECK(device >= 0 && device < n, "device cuda:", device, " requested, but only ", n,
             " CUDA device(s) are present");
}

CachingAllocatorCore& core(int device) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.devices.empty()) {
    int n = device_count();
    r.devices.resize(static_cast<size_t>(n));
  }
  SIAM_CHECK(device >= 0 && device < static_cast<int>(r.devices.size()), "cuda: device ", device, " out of range");
  auto& d = r.devices[static_cast<size_t>(device)];
  if (!d) d = std::make_unique<DeviceAllocator>(device);
  return d->core;
}

std::string mib(size_t bytes) { return std::to_string(bytes / (1 << 20)) + " MiB"; }

}  // namespace

void* caching_alloc(size_t nbytes, int device, void* stream) {
  check_device(device);
  DeviceGuard g(device);
  if (!stream) stream = current_stream(device);
  CachingAllocatorCore& c = core(device);
  void* p = c.allocate(nbytes, stream);
  if (!p) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    (void)cudaGetLastError();
    DeviceAllocStats s = c.stats();
    SIAM_FAIL("CUDA out of memory on cuda:", device, ": tried to allocate ", nbytes, " bytes (", mib(nbytes),
              "); siam holds ", mib(s.allocated_bytes), " in live tensors and ", mib(s.reserved_bytes),
              " reserved; the device has ", mib(free_b), " free of ", mib(total_b));
  }
  return p;
}

void caching_free(void* p, int device) noexcept {
  if (!p) return;
  try {
    core(device).deallocate(p);
  } catch (...) {
    // a bad pointer is a bug in siam; nothing sensible to do in a destructor
  }
}

void record_stream(void* p, int device, void* stream) { core(device).record_stream(p, stream); }

void empty_cache(int device) {
  if (device >= 0) {
    check_device(device);
    core(device).empty_cache();
    return;
  }
  for (int d = 0; d < device_count(); ++d) core(d).empty_cache();
}

DeviceAllocStats device_alloc_stats(int device) {
  check_device(device);
  return core(device).stats();
}
void reset_peak_device_stats(int device) {
  check_device(device);
  core(device).reset_peak();
}

// ---- pinned host memory ----------------------------------------------------------------------------------

namespace {

// Makes `device` current for a scope (events are created on, and recorded onto streams of, the current device).
class OnDevice {
 public:
  explicit OnDevice(int device) {
    SIAM_CUDA_CHECK(cudaGetDevice(&prev_));
    if (device != prev_) SIAM_CUDA_CHECK(cudaSetDevice(device));
  }
  ~OnDevice() { cudaSetDevice(prev_); }
  OnDevice(const OnDevice&) = delete;
  OnDevice& operator=(const OnDevice&) = delete;

 private:
  int prev_ = 0;
};

class PinnedCache {
 public:
  void* alloc(size_t nbytes) {
    size_t cls = 4096;
    while (cls < nbytes) cls <<= 1;
    std::lock_guard<std::mutex> lock(mu_);
    process();
    auto& bin = free_[cls];
    if (!bin.empty()) {
      void* p = bin.back();
      bin.pop_back();
      cached_ -= cls;
      allocated_ += cls;
      blocks_[p].live = true;
      return p;
    }
    void* p = nullptr;
    SIAM_CUDA_CHECK(cudaHostAlloc(&p, cls, cudaHostAllocPortable));
    ++host_allocs_;
    allocated_ += cls;
    blocks_[p] = Info{cls, true, {}, {}, {}};
    return p;
  }

  void free(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(p);
    if (it == blocks_.end()) return;
    Info& info = it->second;
    info.live = false;
    allocated_ -= info.size;
    if (info.streams.empty()) {
      free_[info.size].push_back(p);
      cached_ += info.size;
    } else {
      for (size_t k = 0; k < info.streams.size(); ++k) {
        OnDevice on(info.devices[k]);  // an event is recorded on a stream of its own device
        cudaEvent_t ev = nullptr;
        SIAM_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
        SIAM_CUDA_CHECK(cudaEventRecord(ev, static_cast<cudaStream_t>(info.streams[k])));
        pending_.push_back({ev, p});
      }
      info.streams.clear();
      info.devices.clear();
    }
    for (cudaEvent_t ev : info.uses) cudaEventDestroy(ev);  // released once their work completes
    info.uses.clear();
    process();
  }

  void record(void* p, void* stream, int device) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(p);
    if (it == blocks_.end() || !it->second.live) return;
    Info& info = it->second;
    size_t i = 0;
    while (i < info.streams.size() && info.streams[i] != stream) ++i;
    OnDevice on(device);  // the stream's device: its events are created and recorded there
    if (i == info.streams.size()) {
      cudaEvent_t ev = nullptr;
      SIAM_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
      info.streams.push_back(stream);
      info.devices.push_back(device);
      info.uses.push_back(ev);
    }
    SIAM_CUDA_CHECK(cudaEventRecord(info.uses[i], static_cast<cudaStream_t>(stream)));  // the copy's end
  }

  // The events of the block's recorded copies, taken under the lock and waited for outside it (the alloc and
  // free of other blocks go on meanwhile). The caller owns the block, so no free destroys them meanwhile.
  void host_wait(void* p) {
    std::vector<cudaEvent_t> uses;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = blocks_.find(p);
      if (it == blocks_.end() || !it->second.live || it->second.uses.empty()) return;
      uses = it->second.uses;
      ++host_waits_;
    }
    for (cudaEvent_t ev : uses) SIAM_CUDA_CHECK(cudaEventSynchronize(ev));
  }

  bool contains(const void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    return blocks_.count(const_cast<void*>(p)) > 0;
  }

  PinnedStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return PinnedStats{allocated_, cached_, host_allocs_, host_waits_};
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    process();
    for (auto& [cls, bin] : free_) {
      for (void* p : bin) {
        cudaFreeHost(p);
        blocks_.erase(p);
        cached_ -= cls;
      }
      bin.clear();
    }
  }

 private:
  struct Info {
    size_t size;
    bool live;
    std::vector<void*> streams;     // the streams of the copies recorded since the block was handed out
    std::vector<int> devices;       // per stream: its device
    std::vector<cudaEvent_t> uses;  // per stream: recorded after its latest copy of the block
  };
  // Blocks whose every event has completed go back to their bin.
  void process() {
    std::unordered_map<void*, int> waiting;
    std::vector<std::pair<cudaEvent_t, void*>> keep;
    for (auto& [ev, p] : pending_) {
      cudaError_t e = cudaEventQuery(ev);
      if (e == cudaErrorNotReady) {
        (void)cudaGetLastError();
        keep.push_back({ev, p});
        ++waiting[p];
      } else {
        cudaEventDestroy(ev);
        waiting.emplace(p, 0);
      }
    }
    pending_.swap(keep);
    for (auto& [p, n] : waiting) {
      if (n) continue;
      Info& info = blocks_[p];
      free_[info.size].push_back(p);
      cached_ += info.size;
    }
  }

  std::mutex mu_;
  std::unordered_map<void*, Info> blocks_;
  std::map<size_t, std::vector<void*>> free_;
  std::vector<std::pair<cudaEvent_t, void*>> pending_;
  size_t allocated_ = 0, cached_ = 0, host_allocs_ = 0, host_waits_ = 0;
};

PinnedCache& pinned_cache() {
  static PinnedCache* c = new PinnedCache();
  return *c;
}

}  // namespace

void* pinned_alloc(size_t nbytes) {
  SIAM_CHECK(device_count() > 0,
             "pin_memory: pinned host memory needs a CUDA device, and none is present on this machine");
  return pinned_cache().alloc(nbytes);
}
void pinned_free(void* p) noexcept {
  if (!p) return;
  try {
    pinned_cache().free(p);
  } catch (...) {
  }
}
void pinned_record_stream(void* base, void* stream, int device) { pinned_cache().record(base, stream, device); }
void pinned_host_wait(void* base) { pinned_cache().host_wait(base); }
bool is_pinned_block(const void* base) { return pinned_cache().contains(base); }
PinnedStats pinned_stats() { return pinned_cache().stats(); }
void pinned_empty_cache() { pinned_cache().empty(); }

}  // namespace siam::cuda

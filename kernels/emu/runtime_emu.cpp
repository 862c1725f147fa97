// The emulator's CUDA runtime (kernels/emu/include/cuda_runtime.h): devices of host memory, synchronous
// streams and events, copies checked against the allocations they touch. See kernels/emu/simt.h.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace siam::emu {

namespace {

struct Allocation {
  size_t bytes;
  int device;  // -1: pinned host memory
};

struct State {
  std::mutex mu;
  std::map<uintptr_t, Allocation> allocs;  // by start address
  std::unordered_map<const void*, int> smem_limit;
  size_t device_bytes = 0;
};
State& state() {
  static State* s = new State();  // never destroyed: frees may come from static destructors
  return *s;
}

thread_local int t_device = 0;
thread_local cudaError_t t_last = cudaSuccess;

int device_count() {
  static const int n = [] {
    const char* e = std::getenv("SIAM_EMU_DEVICES");
    const int v = e ? std::atoi(e) : 1;
    return v < 0 ? 0 : v;
  }();
  return n;
}

constexpr size_t kTotalBytes = size_t(143) << 30;  // an H200's 141 GB, in round numbers
constexpr int kDefaultSmem = 48 * 1024, kMaxSmemOptin = 227 * 1024;

cudaError_t fail(cudaError_t e, const std::string& why) {
  std::fprintf(stderr, "siam emu: %s\n", why.c_str());
  t_last = e;
  return e;
}

// The allocation holding [p, p + n) (n >= 1), or null; caller holds the lock.
const Allocation* find(const void* p, size_t n, uintptr_t* start = nullptr) {
  State& s = state();
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = s.allocs.upper_bound(a);
  if (it == s.allocs.begin()) return nullptr;
  --it;
  if (a < it->first || a + n > it->first + it->second.bytes) return nullptr;
  if (start) *start = it->first;
  return &it->second;
}

// Checks one side of a copy: must_be_device says what the copy's kind claims.
cudaError_t check_side(const char* what, const void* p, size_t n, bool must_be_device, const char* op) {
  std::lock_guard<std::mutex> lock(state().mu);
  const Allocation* a = find(p, n);
  const bool device = a && a->device >= 0;
  if (must_be_device && !device) {
    const Allocation* any = find(p, 1);
    return fail(cudaErrorInvalidValue,
                std::string(op) + ": the " + what + " [" + std::to_string(reinterpret_cast<uintptr_t>(p)) + ", +" +
                    std::to_string(n) + ") is " +
                    (any && any->device >= 0 ? "past the end of its device allocation" : "not device memory"));
  }
  if (!must_be_device) {
    const Allocation* any = find(p, 1);
    if (any && any->device >= 0)
      return fail(cudaErrorInvalidValue,
                  std::string(op) + ": the " + what + " is device memory, but the copy's kind says host");
  }
  return cudaSuccess;
}

}  // namespace

int dynamic_smem_limit(const void* kernel) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.smem_limit.find(kernel);
  return it == s.smem_limit.end() ? kDefaultSmem : it->second;
}

void record_launch_error(const std::string&) { t_last = cudaErrorLaunchFailure; }

bool kernel_accessible(const void* p) {
  std::lock_guard<std::mutex> lock(state().mu);
  return find(p, 1) != nullptr;
}

}  // namespace siam::emu

using namespace siam::emu;

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorLaunchFailure: return "emulated kernel failed (see the siam emu line on stderr)";
    default: return "emulated runtime error (see the siam emu line on stderr)";
  }
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return t_last; }

cudaError_t cudaGetDeviceCount(int* n) {
  *n = device_count();
  return *n > 0 ? cudaSuccess : (t_last = cudaErrorNoDevice);
}
cudaError_t cudaGetDevice(int* d) {
  *d = t_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= device_count()) return fail(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(d) + ")");
  t_device = d;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice, "cudaDeviceGetAttribute: device");
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = kDefaultSmem; break;
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = kMaxSmemOptin; break;
    default: return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest) {
  *least = 0;
  *greatest = -5;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(state().mu);
  *total_bytes = kTotalBytes;
  *free_bytes = kTotalBytes - std::min(kTotalBytes, state().device_bytes);
  return cudaSuccess;
}

namespace {
cudaError_t allocate(void** p, size_t bytes, int device) {
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (device >= 0 && s.device_bytes + bytes > kTotalBytes) return t_last = cudaErrorMemoryAllocation;
  }
  void* q = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!q) return t_last = cudaErrorMemoryAllocation;
  std::lock_guard<std::mutex> lock(s.mu);
  s.allocs[reinterpret_cast<uintptr_t>(q)] = Allocation{bytes, device};
  if (device >= 0) s.device_bytes += bytes;
  *p = q;
  return cudaSuccess;
}
cudaError_t release(void* p, bool device, const char* op) {
  if (!p) return cudaSuccess;
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == s.allocs.end() || (it->second.device >= 0) != device)
      return fail(cudaErrorInvalidValue,
                  std::string(op) + ": not the start of a live " + (device ? "device" : "pinned") + " allocation");
    if (device) s.device_bytes -= it->second.bytes;
    s.allocs.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMalloc(void** p, size_t bytes) { return allocate(p, bytes, t_device); }
cudaError_t cudaFree(void* p) { return release(p, true, "cudaFree"); }
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) { return allocate(p, bytes, -1); }
cudaError_t cudaFreeHost(void* p) { return release(p, false, "cudaFreeHost"); }

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  if (kind != cudaMemcpyDefault) {
    const bool dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (cudaError_t e = check_side("destination", dst, bytes, dd, "cudaMemcpyAsync"); e != cudaSuccess) return e;
    if (cudaError_t e = check_side("source", src, bytes, sd, "cudaMemcpyAsync"); e != cudaSuccess) return e;
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemcpyPeerAsync(void* dst, int, const void* src, int, size_t bytes, cudaStream_t s) {
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s);
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = check_side("destination", p, bytes, true, "cudaMemsetAsync"); e != cudaSuccess) return e;
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset2DAsync(void* p, size_t pitch, int value, size_t width, size_t height, cudaStream_t s) {
  if (width > pitch) return fail(cudaErrorInvalidValue, "cudaMemset2DAsync: width over pitch");
  for (size_t r = 0; r < height; ++r)
    if (cudaError_t e = cudaMemsetAsync(static_cast<char*>(p) + r * pitch, value, width, s); e != cudaSuccess) return e;
  return cudaSuccess;
}

// Streams and events: everything already ran when it was issued.
struct CUstream_st {
  int device;
};
struct CUevent_st {
  bool timing;
  int device;  // current when it was created: CUDA records it only on streams of that device
};
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* s, unsigned, int) {
  *s = new CUstream_st{t_device};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) {
  return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: null event");
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  *e = new CUevent_st{(flags & cudaEventDisableTiming) == 0, t_device};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: null event");
  const int stream_device = s ? s->device : t_device;  // the null stream: the current device's
  if (e->device != stream_device)
    return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: an event of device " + std::to_string(e->device) +
                                                    " recorded on a stream of device " +
                                                    std::to_string(stream_device));
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a || !b || !a->timing || !b->timing)
    return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event without timing");
  *ms = 0.f;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || value > kMaxSmemOptin)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                           " bytes of dynamic shared memory, over the device's 227 KB");
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.smem_limit[func] = value;
  return cudaSuccess;
}

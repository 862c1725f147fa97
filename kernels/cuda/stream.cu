// Devices, streams and events (see stream.h). The current stream is thread-local per device, as in PyTorch;
// the comm and copy streams are created once per device and live until the process ends.
#include <cuda_runtime.h>

#include <array>
#include <mutex>

#include "kernels/cuda/check.h"
#include "kernels/cuda/stream.h"

namespace siam::cuda {

namespace {
constexpr int kMaxDevices = 64;

thread_local std::array<StreamHandle, kMaxDevices> t_current{};  // nullptr: the legacy default stream

int resolve(int device) {
  if (device >= 0) {
    SIAM_CHECK(device < kMaxDevices, "cuda: device index ", device, " out of range");
    return device;
  }
  return current_device();
}

struct SideStreams {
  std::mutex mu;
  std::array<StreamHandle, kMaxDevices> comm{}, copy{};
};
SideStreams& side_streams() {
  static SideStreams* s = new SideStreams();  // never destroyed: streams outlive static destructors
  return *s;
}

StreamHandle lazy_stream(std::array<StreamHandle, kMaxDevices>& slot, int device, int priority) {
  SideStreams& s = side_streams();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!slot[device]) {
    DeviceGuard g(device);
    cudaStream_t st = nullptr;
    SIAM_CUDA_CHECK(cudaStreamCreateWithPriority(&st, cudaStreamNonBlocking, priority));
    slot[device] = st;
  }
  return slot[device];
}
}  // namespace

int current_device() {
  int d = 0;
  SIAM_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}
void set_device(int device) { SIAM_CUDA_CHECK(cudaSetDevice(device)); }

DeviceGuard::DeviceGuard(int device) : prev_(current_device()), device_(device) {
  if (device_ != prev_) set_device(device_);
}
DeviceGuard::~DeviceGuard() {
  if (device_ != prev_) cudaSetDevice(prev_);
}

StreamHandle current_stream(int device) { return t_current[resolve(device)]; }
void set_current_stream(StreamHandle stream, int device) { t_current[resolve(device)] = stream; }
StreamHandle compute_stream(int) { return nullptr; }
StreamHandle comm_stream(int device) {
  // Highest priority (the numerically lowest value): gradient all-reduces overlap the backward pass.
  int lo = 0, hi = 0;
  SIAM_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
  int d = resolve(device);
  return lazy_stream(side_streams().comm, d, hi);
}
StreamHandle copy_stream(int device) { return lazy_stream(side_streams().copy, resolve(device), 0); }

StreamGuard::StreamGuard(StreamHandle stream, int device) : device_(resolve(device)), prev_(t_current[device_]) {
  t_current[device_] = stream;
}
StreamGuard::~StreamGuard() { t_current[device_] = prev_; }

StreamHandle create_stream(bool non_blocking, int priority) {
  cudaStream_t s = nullptr;
  SIAM_CUDA_CHECK(cudaStreamCreateWithPriority(&s, non_blocking ? cudaStreamNonBlocking : cudaStreamDefault, priority));
  return s;
}
void destroy_stream(StreamHandle stream) {
  if (!stream) return;
  // The allocator keeps this stream's free blocks under its handle, which a later stream may get again: let the
  // stream's work end first, so that such a stream never reuses a block the old one is still using.
  SIAM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
  SIAM_CUDA_CHECK(cudaStreamDestroy(static_cast<cudaStream_t>(stream)));
}
void synchronize_stream(StreamHandle stream) {
  SIAM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}
void synchronize_device(int device) {
  DeviceGuard g(resolve(device));
  SIAM_CUDA_CHECK(cudaDeviceSynchronize());
}
void stream_wait(StreamHandle waiter, StreamHandle producer) {
  if (waiter == producer) return;
  cudaEvent_t ev = nullptr;
  SIAM_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  SIAM_CUDA_CHECK(cudaEventRecord(ev, static_cast<cudaStream_t>(producer)));
  SIAM_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(waiter), ev, 0));
  SIAM_CUDA_CHECK(cudaEventDestroy(ev));  // released once the wait has been satisfied
}

Event::~Event() {
  if (handle_) cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
}
Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (handle_) cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
    handle_ = o.handle_;
    timing_ = o.timing_;
    o.handle_ = nullptr;
  }
  return *this;
}
void Event::record(StreamHandle stream) {
  if (!handle_) {
    cudaEvent_t ev = nullptr;
    SIAM_CUDA_CHECK(cudaEventCreateWithFlags(&ev, timing_ ? cudaEventDefault : cudaEventDisableTiming));
    handle_ = ev;
  }
  SIAM_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(handle_), static_cast<cudaStream_t>(stream)));
}
void Event::wait(StreamHandle stream) const {
  if (handle_)
    SIAM_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(handle_), 0));
}
bool Event::query() const {
  if (!handle_) return true;
  cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(handle_));
  if (e == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  SIAM_CUDA_CHECK(e);
  return true;
}
void Event::synchronize() const {
  if (handle_) SIAM_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(handle_)));
}
float Event::elapsed_ms(const Event& end) const {
  SIAM_CHECK(handle_ && end.handle_, "Event::elapsed_ms: both events must have been recorded");
  float ms = 0;
  SIAM_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(handle_), static_cast<cudaEvent_t>(end.handle_)));
  return ms;
}

}  // namespace siam::cuda

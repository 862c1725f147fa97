// Devices, streams and events of the CUDA backend, declared without CUDA headers (a stream or an event is
// an opaque void*: cudaStream_t / cudaEvent_t) so engine code compiled without CUDA can include this.
//
// Streams per device:
//   compute stream  where every siam kernel, copy and cuBLAS/cuDNN call goes: current_stream(). It starts as
//                   the device's legacy default stream (handle nullptr), which orders itself with every
//                   blocking stream, so code that forgets a stream argument still runs in order. A
//                   StreamGuard makes another stream current for the calling thread (thread-local, per device).
//   comm stream     comm_stream(): a non-blocking stream for NCCL collectives (created on first use).
//   copy stream     copy_stream(): a non-blocking stream for the data loader's host-to-device copies.
// Work on the comm or copy stream is ordered with the compute stream only through events
// (Event::record + Event::wait, or stream_wait(waiter, producer)); memory used on a stream other than the
// one it was allocated on must be announced with record_stream (kernels/cuda/allocator.h).
#pragma once

namespace siam::cuda {

using StreamHandle = void*;  // cudaStream_t; nullptr is the legacy default stream
using EventHandle = void*;   // cudaEvent_t

int current_device();
void set_device(int device);

// Makes `device` current for the scope (no-op when it already is).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_;
  int device_;
};

// device -1: the current device.
StreamHandle current_stream(int device = -1);
void set_current_stream(StreamHandle stream, int device = -1);
StreamHandle compute_stream(int device = -1);  // the default compute stream (legacy default stream)
StreamHandle comm_stream(int device = -1);
StreamHandle copy_stream(int device = -1);

// Makes `stream` the current stream of `device` for the calling thread until the guard ends.
class StreamGuard {
 public:
  explicit StreamGuard(StreamHandle stream, int device = -1);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  StreamHandle prev_;
};

StreamHandle create_stream(bool non_blocking = true, int priority = 0);  // on the current device
void destroy_stream(StreamHandle stream);
void synchronize_stream(StreamHandle stream);
void synchronize_device(int device = -1);
// Work enqueued on `waiter` after this call starts only once the work enqueued so far on `producer` is done.
void stream_wait(StreamHandle waiter, StreamHandle producer);

// A CUDA event (created on the current device on first record). Move-only.
class Event {
 public:
  explicit Event(bool timing = false) : timing_(timing) {}
  ~Event();
  Event(Event&& o) noexcept : handle_(o.handle_), timing_(o.timing_) { o.handle_ = nullptr; }
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(StreamHandle stream);
  void record() { record(current_stream()); }
  void wait(StreamHandle stream) const;  // stream waits for this event (no-op when never recorded)
  bool query() const;                    // true when done or never recorded
  void synchronize() const;
  float elapsed_ms(const Event& end) const;  // both recorded with timing = true
  EventHandle handle() const { return handle_; }

 private:
  EventHandle handle_ = nullptr;
  bool timing_;
};

}  // namespace siam::cuda

// Device memory and copies: device_alloc/device_free go through the stream-ordered caching allocator
// (allocator.cu), copies are cudaMemcpyAsync on the current stream (stream.cu).
#include <cuda_runtime.h>

#include <string>

#include "engine/core/cuda_health.h"
#include "engine/core/device.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"

namespace siam::cuda {

namespace {
std::string describe(cudaError_t e) { return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")"; }

struct DeviceCount {
  int n = 0;
  std::string error;  // why n is 0
};

const DeviceCount& devices() {
  static const DeviceCount c = [] {
    DeviceCount r;
    const cudaError_t e = cudaGetDeviceCount(&r.n);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky "no driver" error
      r.n = 0;
      r.error = "cudaGetDeviceCount: " + describe(e);
    } else if (r.n == 0) {
      r.error = "cudaGetDeviceCount found no device";
    }
    return r;
  }();
  return c;
}
}  // namespace

int device_count() { return devices().n; }

bool emulated() {
#if defined(SIAM_CUDA_EMU)
  return true;
#else
  return false;
#endif
}

void* device_alloc(size_t nbytes, int device) { return caching_alloc(nbytes, device, nullptr); }

void device_free(void* p, int device) noexcept { caching_free(p, device); }

void copy_bytes(void* dst, bool dst_cuda, const void* src, bool src_cuda, size_t nbytes, int device,
                bool synchronous) {
  if (nbytes == 0) return;
  cudaMemcpyKind kind = dst_cuda ? (src_cuda ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                 : (src_cuda ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  DeviceGuard g(device);
  cudaStream_t s = static_cast<cudaStream_t>(current_stream(device));
  SIAM_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, s));
  // Host to device too: from pinned memory the copy may still be reading the source when cudaMemcpyAsync returns
  // (from pageable memory the driver has already synchronized the stream and staged the bytes).
  if (synchronous && !(dst_cuda && src_cuda)) SIAM_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_peer(void* dst, int dst_device, const void* src, int src_device, size_t nbytes) {
  if (nbytes == 0) return;
  {
    // The source's producers ran on its own device's current stream: let them finish (a rare path).
    DeviceGuard gs(src_device);
    synchronize_stream(current_stream(src_device));
  }
  DeviceGuard g(dst_device);
  SIAM_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, nbytes,
                                      static_cast<cudaStream_t>(current_stream(dst_device))));
}

}  // namespace siam::cuda

namespace siam {
bool cuda_available() { return cuda::device_count() > 0; }
int cuda_device_count() { return cuda::device_count(); }

std::string cuda_unavailable_reason() { return cuda::devices().error; }

std::string cuda_sticky_error() {
  const int n = cuda::device_count();
  if (n == 0) return {};
  int prev = 0;
  (void)cudaGetDevice(&prev);
  std::string error;
  for (int d = 0; d < n && error.empty(); ++d) {
    if (cudaSetDevice(d) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
      // Either an error of an earlier call that is not sticky (cleared by cudaGetLastError) or a poisoned
      // context, which keeps failing.
      (void)cudaGetLastError();
      cudaError_t e = cudaSetDevice(d);
      if (e == cudaSuccess) e = cudaDeviceSynchronize();
      if (e != cudaSuccess) error = "cuda:" + std::to_string(d) + ": " + cuda::describe(e);
    }
  }
  (void)cudaSetDevice(prev);
  if (error.empty()) (void)cudaGetLastError();
  return error;
}
}  // namespace siam

// Device memory and copies: plain cudaMalloc/cudaFree and cudaMemcpy. The stream-ordered caching
// allocator of the CUDA backend issue replaces device_alloc/device_free behind the same entry points.
#include <cuda_runtime.h>

#include "engine/core/device.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/runtime.h"

namespace siam::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

void* device_alloc(size_t nbytes, int device) {
  int n = device_count();
  SIAM_CHECK(n > 0, "device cuda:", device, " requested, but no CUDA device is present on this machine");
  SIAM_CHECK(device >= 0 && device < n, "device cuda:", device, " requested, but only ", n,
             " CUDA device(s) are present");
  SIAM_CUDA_CHECK(cudaSetDevice(device));
  void* p = nullptr;
  SIAM_CUDA_CHECK(cudaMalloc(&p, nbytes == 0 ? 1 : nbytes));
  return p;
}

void device_free(void* p, int device) noexcept {
  cudaSetDevice(device);
  cudaFree(p);
}

void copy_bytes(void* dst, bool dst_cuda, const void* src, bool src_cuda, size_t nbytes) {
  cudaMemcpyKind kind = dst_cuda ? (src_cuda ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                 : (src_cuda ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  SIAM_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kind));
}

}  // namespace siam::cuda

namespace siam {
bool cuda_available() { return cuda::device_count() > 0; }
int cuda_device_count() { return cuda::device_count(); }
}  // namespace siam

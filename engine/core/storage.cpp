#include "engine/core/storage.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/core/error.h"

#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/runtime.h"
#endif

namespace siam {

void* cpu_alloc(size_t nbytes) {
  size_t rounded = (nbytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) SIAM_FAIL("out of host memory: could not allocate ", nbytes, " bytes");
  return p;
}
void cpu_free(void* p) { std::free(p); }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
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

Storage::~Storage() {
  if (!data_) return;
  if (device_.is_cpu()) {
    cpu_free(data_);
    return;
  }
#if defined(SIAM_WITH_CUDA)
  cuda::device_free(data_, device_.index);
#endif
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#if defined(SIAM_WITH_CUDA)
  cuda::copy_bytes(dst, dst_dev.is_cuda(), src, src_dev.is_cuda(), nbytes);
#else
  SIAM_FAIL("copy between ", src_dev.str(), " and ", dst_dev.str(), " needs the CUDA backend");
#endif
}

}  // namespace siam

// Host-side entry points of the CUDA runtime layer (device memory and copies). Declared without CUDA
// headers so the engine can call them from plain C++; defined in kernels/cuda/runtime.cu.
#pragma once
#include <cstddef>

namespace siam::cuda {
int device_count();  // 0 when no driver or device is present (never throws)
void* device_alloc(size_t nbytes, int device);
void device_free(void* p, int device) noexcept;
void copy_bytes(void* dst, bool dst_cuda, const void* src, bool src_cuda, size_t nbytes);
}  // namespace siam::cuda

// Host-side entry points of the CUDA runtime layer (device memory and copies). Declared without CUDA
// headers so the engine can call them from plain C++; defined in kernels/cuda/runtime.cu.
#pragma once
#include <cstddef>

namespace siam::cuda {
int device_count();  // 0 when no driver or device is present (never throws)
// Whether this build runs its kernels on the CUDA emulator (kernels/emu) rather than a GPU: for the few tests
// that check our plumbing where a library's own choice decides on real hardware (which cuDNN algorithm runs).
bool emulated();
// Device memory from the caching allocator (kernels/cuda/allocator.h) on the device's current stream.
// Throws siam::Error when the device is absent or out of memory.
void* device_alloc(size_t nbytes, int device);
void device_free(void* p, int device) noexcept;
// Copies on `device`'s current stream (cudaMemcpyAsync). With synchronous = true the call returns once the
// bytes have arrived (the stream is synchronized whenever host memory is involved, as PyTorch's blocking
// copies do); otherwise a copy from or into pinned memory may still be running when it returns (synchronize
// the stream, or record an event, before reading the destination or writing the source). Host to device
// copies from pageable memory are staged by the driver and never read the source after the call returns.
void copy_bytes(void* dst, bool dst_cuda, const void* src, bool src_cuda, size_t nbytes, int device = 0,
                bool synchronous = true);
// Copy between two devices (peer copy on the destination's current stream).
void copy_peer(void* dst, int dst_device, const void* src, int src_device, size_t nbytes);
}  // namespace siam::cuda

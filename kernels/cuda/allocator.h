// Device and pinned-host memory of the CUDA backend, declared without CUDA headers (engine code calls these
// from plain C++; defined in kernels/cuda/allocator.cu).
//
// Device memory: one stream-ordered caching allocator per device (bookkeeping in
// kernels/cuda/allocator_core.h: size-class pools, block splitting and coalescing, per-stream reuse, events
// for cross-stream frees). Underneath is plain cudaMalloc/cudaFree, never managed memory. Storage
// (engine/core/storage.cpp) allocates through runtime.h's device_alloc, which lands here on the current
// stream of the device (kernels/cuda/stream.h).
//
// Pinned host memory: cudaHostAlloc'd (portable) blocks, cached by power-of-two size class. A block used by
// an asynchronous copy is handed out again only after that copy's stream has passed the point where the
// block was freed (an event recorded at free time). The engine's way in is Tensor::pin_memory() and
// TensorOptions::pinned (engine/tensor.h): the data loader fills batches in pinned tensors so that
// `batch.to(device, /*non_blocking=*/true)` is a true asynchronous copy.
#pragma once
#include <cstddef>

#include "kernels/cuda/allocator_core.h"

namespace siam::cuda {

// ---- device memory ----
// A block of at least nbytes on `device` for use on `stream` (nullptr: the device's current stream).
// Throws siam::Error naming the device, the request and the allocator's state when memory runs out.
void* caching_alloc(size_t nbytes, int device, void* stream);
void caching_free(void* p, int device) noexcept;
// p (live, from caching_alloc on `device`) is also used on `stream`: its reuse waits for that stream.
void record_stream(void* p, int device, void* stream);
// Releases every cached, wholly free segment of `device` (-1: all devices) with cudaFree.
void empty_cache(int device = -1);
DeviceAllocStats device_alloc_stats(int device);
void reset_peak_device_stats(int device);

// ---- pinned host memory ----
void* pinned_alloc(size_t nbytes);  // throws siam::Error when no CUDA device is present
void pinned_free(void* p) noexcept;
// An asynchronous copy just queued on `stream` (of CUDA device `device`) uses the pinned block that starts at
// `base` (call it after queuing the copy): when the block is freed, its reuse waits for that stream, and
// pinned_host_wait waits for the copy. No-op for pointers that are not pinned blocks.
void pinned_record_stream(void* base, void* stream, int device);
// Blocks the calling thread until every asynchronous copy recorded on the live pinned block at `base` has
// finished, so that the host may write the block again. For a holder that refills its pinned buffers without
// freeing them (the data loader's reused batches); the caller must be the block's only user. No-op for
// pointers that are not pinned blocks.
void pinned_host_wait(void* base);
bool is_pinned_block(const void* base);
struct PinnedStats {
  size_t allocated_bytes = 0;  // live blocks (by size class)
  size_t cached_bytes = 0;     // freed blocks kept for reuse
  size_t host_allocs = 0;      // cudaHostAlloc calls
  size_t host_waits = 0;       // pinned_host_wait calls that found copies recorded on their block
};
PinnedStats pinned_stats();
void pinned_empty_cache();

}  // namespace siam::cuda

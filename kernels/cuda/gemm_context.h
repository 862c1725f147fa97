// What the dense-math kernels (gemm.cu, cudnn_conv.cu, cudnn_norm_pool.cu, autocast.cu) share, with CUDA
// headers: the stream they run on, the device switch, dtype mappings. Internal to kernels/cuda.
//
// dense_stream(device) is the one place that names the stream of every cuBLASLt, cuDNN and dense kernel
// launch: the calling thread's current stream of the device (kernels/cuda/stream.h; the legacy default stream
// unless a StreamGuard says otherwise), the stream the caching allocator orders its blocks on, so workspaces
// freed right after a launch are safe to reuse.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <library_types.h>

#include "kernels/cuda/check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

inline cudaStream_t dense_stream(int device) { return static_cast<cudaStream_t>(siam::cuda::current_stream(device)); }

// Makes `device` current for the calling thread (cheap when it already is).
inline void use_device(int device) {
  int cur = -1;
  SIAM_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != device) SIAM_CUDA_CHECK(cudaSetDevice(device));
}

inline cudaDataType_t cuda_data_type(DenseType t) {
  switch (t) {
    case DenseType::f32: return CUDA_R_32F;
    case DenseType::f64: return CUDA_R_64F;
    case DenseType::bf16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

// Largest power of two (at most 256) that divides the address: what cuBLASLt may assume about a pointer.
inline uint32_t pointer_alignment(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a >>= 1;
  return a;
}

inline int blocks_for(int64_t n, int threads = 256, int64_t max_blocks = 65535 * 8) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return static_cast<int>(b);
}

}  // namespace siam::kernels::cuda

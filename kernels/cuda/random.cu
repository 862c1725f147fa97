// Philox fills and dropout's keep mask on the GPU (version 1: one thread per element, grid-stride), on the
// current stream. Element i uses the Philox block at counter offset + i, exactly as kernels/cpu/random.cpp,
// through the shared __host__ __device__ helpers of kernels/common/philox.h and kernels/cpu/random.h, so the
// CPU test of those helpers covers this arithmetic too.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cpu/random.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/random.h"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

namespace {
__global__ void fill_uniform_kernel1(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double lo,
                                     double span) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Philox4 b = philox_block(seed, stream, offset + static_cast<uint64_t>(i));
    out[i] = static_cast<float>(lo + span * static_cast<double>(philox_uniform(b.v[0])));
  }
}
__global__ void fill_normal_kernel1(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double mean,
                                    double std) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Philox4 b = philox_block(seed, stream, offset + static_cast<uint64_t>(i));
    out[i] = static_cast<float>(mean + std * philox_normal(b));
  }
}
__global__ void bernoulli_keep_kernel1(uint8_t* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset,
                                       float p) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Philox4 b = philox_block(seed, stream, offset + static_cast<uint64_t>(i));
    out[i] = philox_uniform(b.v[0]) >= p ? 1 : 0;
  }
}
int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + 255) / 256, 65535)); }
cudaStream_t cur() { return static_cast<cudaStream_t>(siam::cuda::current_stream()); }
}  // namespace

void fill_uniform_f32(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double lo, double hi) {
  if (n == 0) return;
  fill_uniform_kernel1<<<blocks_for(n), 256, 0, cur()>>>(out, n, seed, stream, offset, lo, hi - lo);
  SIAM_CUDA_LAUNCH_CHECK();
}

void fill_normal_f32(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double mean, double std) {
  if (n == 0) return;
  fill_normal_kernel1<<<blocks_for(n), 256, 0, cur()>>>(out, n, seed, stream, offset, mean, std);
  SIAM_CUDA_LAUNCH_CHECK();
}

void bernoulli_keep(uint8_t* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double p) {
  if (n == 0) return;
  bernoulli_keep_kernel1<<<blocks_for(n), 256, 0, cur()>>>(out, n, seed, stream, offset, static_cast<float>(p));
  SIAM_CUDA_LAUNCH_CHECK();
}

}  // namespace siam::kernels::cuda

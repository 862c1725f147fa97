// The CUDA emulator's own tests (kernels/emu/simt.h): built only into siam_tests_cuda_emu, through
// scripts/emu_rewrite.py like kernels/cuda/*.cu (nvcc never sees this file). Each fault class the emulator
// claims to catch is provoked once, and the primitives the kernels rely on (barriers, shuffles, mma.sync,
// dynamic shared memory) are checked against plain loops.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/common/half.h"

namespace {

template <class T> T* device_copy(const std::vector<T>& v) {
  T* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, v.size() * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return p;
}
template <class T> std::vector<T> host_copy(const T* p, size_t n) {
  std::vector<T> v(n);
  EXPECT_EQ(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return v;
}

// A block-wide tree sum in shared memory: wrong without the barriers.
__global__ void block_sum_kernel(const float* x, float* out) {
  __shared__ float buf[256];
  buf[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

TEST(CudaEmu, BarriersOrderSharedMemory) {
  std::vector<float> x(3 * 256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17);
  float* dx = device_copy(x);
  float* dout = device_copy(std::vector<float>(3, -1.f));
  block_sum_kernel<<<3, 256>>>(dx, dout);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const auto out = host_copy(dout, 3);
  for (int b = 0; b < 3; ++b) {
    float want = 0;
    for (int i = 0; i < 256; ++i) want += x[static_cast<size_t>(b * 256 + i)];
    EXPECT_EQ(out[static_cast<size_t>(b)], want) << "block " << b;
  }
  cudaFree(dx);
  cudaFree(dout);
}

__global__ void shuffle_kernel(int* out) {
  const int lane = threadIdx.x & 31;
  const int v = 100 * static_cast<int>(threadIdx.x);
  out[threadIdx.x * 4 + 0] = __shfl_xor_sync(0xffffffffu, v, 5);
  out[threadIdx.x * 4 + 1] = __shfl_down_sync(0xffffffffu, v, 3);
  out[threadIdx.x * 4 + 2] = __shfl_sync(0xffffffffu, v, 7);
  out[threadIdx.x * 4 + 3] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0) & 0x7fffffff);
}

TEST(CudaEmu, ShufflesFollowThePtxSemantics) {
  int* d = device_copy(std::vector<int>(64 * 4, 0));
  shuffle_kernel<<<1, 64>>>(d);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const auto o = host_copy(d, 64 * 4);
  unsigned ballot = 0;
  for (int l = 0; l < 32; ++l) ballot |= (l % 3 == 0) ? (1u << l) : 0u;
  for (int t = 0; t < 64; ++t) {
    const int lane = t & 31, base = t - lane;
    EXPECT_EQ(o[static_cast<size_t>(t * 4)], 100 * (base + (lane ^ 5)));
    EXPECT_EQ(o[static_cast<size_t>(t * 4 + 1)], 100 * (lane + 3 < 32 ? t + 3 : t));  // past the warp: own value
    EXPECT_EQ(o[static_cast<size_t>(t * 4 + 2)], 100 * (base + 7));
    EXPECT_EQ(o[static_cast<size_t>(t * 4 + 3)], static_cast<int>(ballot & 0x7fffffff));
  }
  cudaFree(d);
}

// One m16n8k16 product per warp against a plain loop over the matrices the fragments describe.
__global__ void mma_kernel(const uint32_t* a, const uint32_t* b, float* c) {
  const int lane = threadIdx.x;
  uint32_t af[4] = {a[lane * 4], a[lane * 4 + 1], a[lane * 4 + 2], a[lane * 4 + 3]};
  uint32_t bf[2] = {b[lane * 2], b[lane * 2 + 1]};
  float cf[4] = {1.f, 1.f, 1.f, 1.f};
  ::siam::emu::mma_m16n8k16_bf16(cf, af, bf);
  for (int e = 0; e < 4; ++e) c[lane * 4 + e] = cf[e];
}

TEST(CudaEmu, MmaMatchesTheFragmentLayout) {
  // A (16 x 16) and B (16 x 8) with small integers (exact in bf16 and in the f32 sums).
  float A[16][16], B[16][8];
  for (int i = 0; i < 16; ++i)
    for (int k = 0; k < 16; ++k) A[i][k] = static_cast<float>((i * 3 + k * 5) % 7 - 3);
  for (int k = 0; k < 16; ++k)
    for (int j = 0; j < 8; ++j) B[k][j] = static_cast<float>((k * 2 + j * 7) % 5 - 2);
  auto bits = [](float f) { return static_cast<uint32_t>(siam::f32_to_bf16_bits(f)); };
  std::vector<uint32_t> a(32 * 4), b(32 * 2);
  for (int l = 0; l < 32; ++l) {  // the PTX ISA's tables for .bf16 m16n8k16
    const int g = l >> 2, q = l & 3;
    for (int r = 0; r < 4; ++r) {
      const int row = g + 8 * (r & 1), col = 2 * q + 8 * (r >> 1);
      a[static_cast<size_t>(l * 4 + r)] = bits(A[row][col]) | (bits(A[row][col + 1]) << 16);
    }
    for (int r = 0; r < 2; ++r) {
      const int k = 2 * q + 8 * r;
      b[static_cast<size_t>(l * 2 + r)] = bits(B[k][g]) | (bits(B[k + 1][g]) << 16);
    }
  }
  uint32_t* da = device_copy(a);
  uint32_t* db = device_copy(b);
  float* dc = device_copy(std::vector<float>(32 * 4, 0.f));
  mma_kernel<<<1, 32>>>(da, db, dc);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const auto c = host_copy(dc, 32 * 4);
  for (int l = 0; l < 32; ++l)
    for (int e = 0; e < 4; ++e) {
      const int row = (l >> 2) + 8 * (e >> 1), col = 2 * (l & 3) + (e & 1);
      float want = 1.f;
      for (int k = 0; k < 16; ++k) want += A[row][k] * B[k][col];
      EXPECT_EQ(c[static_cast<size_t>(l * 4 + e)], want) << "lane " << l << " element " << e;
    }
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
}

__global__ void dynamic_smem_kernel(float* out, int n) {
  extern __shared__ __align__(16) unsigned char raw[];
  float* s = reinterpret_cast<float*>(raw);
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % n];
}

TEST(CudaEmu, DynamicSharedMemoryHasItsLimit) {
  float* d = device_copy(std::vector<float>(64, 0.f));
  dynamic_smem_kernel<<<1, 64, 64 * sizeof(float)>>>(d, 64);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(host_copy(d, 64)[63], 0.f);
  // over 48 KB without cudaFuncSetAttribute: refused, as on a GPU
  dynamic_smem_kernel<<<1, 64, 64 * 1024>>>(d, 64);
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  ASSERT_EQ(cudaFuncSetAttribute(dynamic_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
            cudaSuccess);
  dynamic_smem_kernel<<<1, 64, 64 * 1024>>>(d, 64);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_NE(cudaFuncSetAttribute(dynamic_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024),
            cudaSuccess);
  (void)cudaGetLastError();
  cudaFree(d);
}

// Thread 0 skips the barrier the others wait at: a deadlock on a GPU, a failed launch here.
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x != 0) {
    __syncthreads();
    out[threadIdx.x] = 1;
  } else {
    __syncwarp();
  }
}
__global__ void trap_kernel(int* out) {
  if (blockIdx.x == 1 && threadIdx.x == 3) __trap();
  out[blockIdx.x] = 1;
}
__global__ void write_kernel(int* out) { out[threadIdx.x] = 7; }

TEST(CudaEmu, FaultsFailTheLaunch) {
  int* d = device_copy(std::vector<int>(64, 0));
  divergent_barrier_kernel<<<1, 64>>>(d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure) << "a barrier that cannot complete";
  trap_kernel<<<2, 32>>>(d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure) << "__trap()";
  write_kernel<<<0, 32>>>(d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure) << "an empty grid";
  write_kernel<<<1, 2048>>>(d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure) << "2048 threads per block";
  std::vector<int> host(32, 0);
  write_kernel<<<1, 32>>>(host.data());
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure) << "a pageable host pointer";
  EXPECT_EQ(host[0], 0) << "the kernel must not have run";
  // and a good launch still works afterwards (the errors are not sticky here)
  write_kernel<<<1, 32>>>(d);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(host_copy(d, 1)[0], 7);
  cudaFree(d);
}

// Thread t reads what thread t - 1 wrote to shared memory (base + t - 1), with or without the barrier between.
__global__ void neighbour_kernel(int* out, int base, bool barrier) {
  __shared__ int s[64];
  s[threadIdx.x] = base + static_cast<int>(threadIdx.x);
  if (barrier) __syncthreads();
  out[threadIdx.x] = threadIdx.x > 0 ? s[threadIdx.x - 1] - base : -1;
}

TEST(CudaEmu, ReverseOrderExposesAMissingBarrier) {
  int* d = device_copy(std::vector<int>(64, 0));
  const bool was = ::siam::emu::reverse_order();
  int base = 0;
  for (bool reverse : {false, true})
    for (bool barrier : {true, false}) {
      ::siam::emu::set_reverse_order(reverse);
      base += 1000;  // each launch writes other values than the last one left in shared memory
      neighbour_kernel<<<1, 64>>>(d, base, barrier);
      ASSERT_EQ(cudaGetLastError(), cudaSuccess);
      const auto o = host_copy(d, 64);
      bool right = true;
      for (int t = 1; t < 64; ++t) right = right && o[static_cast<size_t>(t)] == t - 1;
      // forward order hides the missing barrier (each thread writes before the next one reads); reversed, thread
      // t reads before thread t - 1 has written
      EXPECT_EQ(right, barrier || !reverse) << "reverse " << reverse << " barrier " << barrier;
    }
  ::siam::emu::set_reverse_order(was);
  cudaFree(d);
}

// Reads slot 5 of shared memory that no thread wrote.
__global__ void unwritten_shared_kernel(float* out) {
  __shared__ float s[8];
  if (threadIdx.x == 0) s[0] = 1.f;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s[5];
}

TEST(CudaEmu, UnwrittenSharedMemoryReadsAsNan) {
  float* d = device_copy(std::vector<float>(3, 0.f));
  unwritten_shared_kernel<<<3, 32>>>(d);  // registers s (its first block, in either order, may find zeros)
  unwritten_shared_kernel<<<3, 32>>>(d);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const auto o = host_copy(d, 3);
  for (int b = 0; b < 3; ++b) EXPECT_TRUE(std::isnan(o[static_cast<size_t>(b)])) << "block " << b << ": " << o[b];
  cudaFree(d);
}

TEST(CudaEmu, CopiesAreCheckedAgainstTheirAllocations) {
  int* d = device_copy(std::vector<int>(8, 0));
  std::vector<int> h(16, 0);
  EXPECT_EQ(cudaMemcpy(h.data(), d, 16 * sizeof(int), cudaMemcpyDeviceToHost), cudaErrorInvalidValue)
      << "reads past the end of the allocation";
  EXPECT_EQ(cudaMemcpy(d, h.data(), 8 * sizeof(int), cudaMemcpyDeviceToHost), cudaErrorInvalidValue)
      << "a device destination where the kind says host";
  EXPECT_EQ(cudaMemsetAsync(h.data(), 0, sizeof(int)), cudaErrorInvalidValue) << "memset of host memory";
  (void)cudaGetLastError();
  cudaFree(d);
}

}  // namespace

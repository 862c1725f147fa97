// CUDA fills from the shared Philox generator: the same numbers as kernels/cpu/random.h for the same
// (seed, stream, offset). Host entry points on device memory, launched on the current CUDA stream. Declared without CUDA
// headers so engine code can call them in a CUDA build.
#pragma once
#include <cstdint>

namespace siam::kernels::cuda {
void fill_uniform_f32(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double lo, double hi);
void fill_normal_f32(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double mean, double std);
// Dropout's keep mask: out[i] = 1 where philox_uniform(w0 of block offset + i) >= p, else 0 (u8, n elements),
// the same bits as kernels::cpu::bernoulli_keep.
void bernoulli_keep(uint8_t* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double p);
}  // namespace siam::kernels::cuda

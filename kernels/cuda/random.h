// CUDA fills from the shared Philox generator: the same numbers as kernels/cpu/random.h for the same
// (seed, stream, offset). Host entry points; `out` is device memory of n floats. Declared without CUDA
// headers so engine code can call them in a CUDA build.
#pragma once
#include <cstdint>

namespace siam::kernels::cuda {
void fill_uniform_f32(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double lo, double hi);
void fill_normal_f32(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double mean, double std);
}  // namespace siam::kernels::cuda

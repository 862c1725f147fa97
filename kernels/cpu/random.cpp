#include "kernels/cpu/random.h"

namespace siam::kernels::cpu {

template <class T>
void fill_uniform(int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, T* out, double lo, double hi) {
#pragma omp parallel for if (n >= 65536)
  for (int64_t i = 0; i < n; ++i) {
    Philox4 b = philox_block(seed, stream, offset + static_cast<uint64_t>(i));
    out[i] = static_cast<T>(lo + (hi - lo) * static_cast<double>(philox_uniform(b.v[0])));
  }
}

template <class T>
void fill_normal(int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, T* out, double mean, double std) {
#pragma omp parallel for if (n >= 65536)
  for (int64_t i = 0; i < n; ++i) {
    Philox4 b = philox_block(seed, stream, offset + static_cast<uint64_t>(i));
    out[i] = static_cast<T>(mean + std * philox_normal(b));
  }
}

void bernoulli_keep(int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, double p, uint8_t* out) {
  const float pf = static_cast<float>(p);
#pragma omp parallel for if (n >= 65536)
  for (int64_t i = 0; i < n; ++i) {
    Philox4 b = philox_block(seed, stream, offset + static_cast<uint64_t>(i));
    out[i] = philox_uniform(b.v[0]) >= pf ? 1 : 0;
  }
}

template void fill_uniform<float>(int64_t, uint64_t, uint64_t, uint64_t, float*, double, double);
template void fill_uniform<double>(int64_t, uint64_t, uint64_t, uint64_t, double*, double, double);
template void fill_normal<float>(int64_t, uint64_t, uint64_t, uint64_t, float*, double, double);
template void fill_normal<double>(int64_t, uint64_t, uint64_t, uint64_t, double*, double, double);

}  // namespace siam::kernels::cpu

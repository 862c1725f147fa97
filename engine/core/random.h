// The global random state: a Philox key (the seed) and a counter offset that every draw advances by the
// number of elements it used. Reproducible for a seed whatever the thread count or device.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace siam {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Reserves n counters and returns the first.
  uint64_t advance(uint64_t n) {
    uint64_t o = offset_;
    offset_ += n;
    return o;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);  // resets the default generator to (seed, offset 0)

// Streams used by the engine's own draws (other users pick their own stream ids).
constexpr uint64_t kStreamTensor = 0;   // rand, randn, init
constexpr uint64_t kStreamDropout = 1;

Tensor rand(const Shape& shape, Generator& gen, TensorOptions opts = {});
Tensor randn(const Shape& shape, Generator& gen, TensorOptions opts = {});
Tensor uniform(const Shape& shape, double lo, double hi, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor normal(const Shape& shape, double mean, double std, TensorOptions opts = {}, Generator* gen = nullptr);

}  // namespace siam

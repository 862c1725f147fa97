// Unfused compositions of engine ops that the fused-loss benchmarks compare against, shared by the CPU
// (bench_siamese.cpp) and CUDA (bench_cuda_siamese.cpp) benchmarks: they run on whatever device their inputs
// are on.
#pragma once
#include <cstdint>

#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "engine/tensor.h"

namespace siam::bench {

// Barlow Twins as a PyTorch user writes it: standardize each view (mean, biased var + eps), C = z1h^T z2h / N,
// the on- and off-diagonal sums of squares through an identity mask (D x D temporaries).
inline Tensor xcorr_unfused(const Tensor& z1, const Tensor& z2, double lambda, double eps) {
  auto stdz = [eps](const Tensor& z) {
    return siam::div(siam::sub(z, siam::mean(z, {0}, true)), siam::sqrt(siam::add(siam::var(z, {0}, 0, true), eps)));
  };
  const int64_t n = z1.size(0), d = z1.size(1);
  Tensor c = siam::div(siam::matmul(stdz(z1).t(), stdz(z2)), double(n));  // (D, D)
  Tensor e = siam::eye(d, z1.options());
  Tensor diag = siam::sum(siam::mul(c, e), {1});
  Tensor off = siam::mul(c, siam::rsub(1.0, e));
  return siam::add(siam::sum(siam::square(siam::rsub(1.0, diag))), siam::mul(siam::sum(siam::square(off)), lambda));
}

}  // namespace siam::bench

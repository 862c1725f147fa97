// mixup (Zhang et al. 2018) as a batch-level op: lambda ~ Beta(alpha, alpha), a random permutation perm of
// the batch, mixed[i] = lambda * x[i] + (1 - lambda) * x[perm[i]]. The method mixes its targets with the
// same perm and lambda (for example lambda * loss(y) + (1 - lambda) * loss(y[perm])); for several views of
// one batch, sample once and apply the same parameters to each.
//
// Randomness: Philox keyed by (seed, epoch, step) on mixup's own streams (tag "MX"), so a run reproduces
// whatever the thread count. Beta(a, a) = X / (X + Y) with X, Y ~ Gamma(a) (Marsaglia-Tsang, with the
// u^(1/a) boost for a < 1); the permutation is a Fisher-Yates shuffle (as torch.randperm's distribution).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace siam::data {

class OpRng;

struct MixupParams {
  std::vector<int64_t> perm;  // (B) a permutation of 0..B-1
  double lambda = 1.0;        // in [0, 1]
};

struct MixupResult {
  Tensor mixed;   // same shape as x, f32
  Tensor perm;    // (B) i64
  double lambda;  // weight of x itself
};

// Gamma(a, 1) and Beta(a, b) draws from a Philox stream (a, b > 0).
double sample_gamma(double a, OpRng& rng);
double sample_beta(double a, double b, OpRng& rng);

MixupParams sample_mixup(int64_t batch, double alpha, uint64_t seed, uint64_t epoch, int64_t step);
// x: (B, ...) f32 on the CPU (any strides: it is made contiguous); returns a new tensor.
Tensor mixup_apply(const Tensor& x, const MixupParams& p);
MixupResult mixup(const Tensor& x, double alpha, uint64_t seed, uint64_t epoch, int64_t step);

}  // namespace siam::data

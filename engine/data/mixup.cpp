// mixup: Beta draws, permutation, blend; see mixup.h.
#include "engine/data/mixup.h"

#include <cmath>
#include <numbers>

#include "engine/data/views.h"

namespace siam::data {

namespace {
constexpr uint64_t kMixupTag = 0x4D58ull << 48;  // "MX"
uint64_t mixup_stream(uint64_t epoch, uint32_t which) { return kMixupTag | ((epoch & 0xFFFFFFFFFFull) << 8) | which; }
double normal(OpRng& rng) {  // Box-Muller, u1 in (0, 1]
  const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}
}  // namespace

double sample_gamma(double a, OpRng& rng) {
  SIAM_CHECK(a > 0 && std::isfinite(a), "sample_gamma: shape must be > 0, got ", a);
  if (a < 1.0) {  // Gamma(a) = Gamma(a + 1) * U^(1 / a)
    const double u = 1.0 - rng.uniform();
    return sample_gamma(a + 1.0, rng) * std::pow(u, 1.0 / a);
  }
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    const double x = normal(rng);
    double v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    const double u = 1.0 - rng.uniform();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

double sample_beta(double a, double b, OpRng& rng) {
  const double x = sample_gamma(a, rng), y = sample_gamma(b, rng);
  if (x + y == 0.0) return rng.uniform() < a / (a + b) ? 1.0 : 0.0;  // both underflowed (tiny a, b): the limit
  return x / (x + y);
}

MixupParams sample_mixup(int64_t batch, double alpha, uint64_t seed, uint64_t epoch, int64_t step) {
  SIAM_CHECK(batch >= 1, "mixup: batch size must be >= 1, got ", batch);
  SIAM_CHECK(alpha > 0 && std::isfinite(alpha), "mixup: alpha must be > 0, got ", alpha);
  SIAM_CHECK(step >= 0, "mixup: step must be >= 0, got ", step);
  MixupParams p;
  OpRng lam(seed, mixup_stream(epoch, 0), static_cast<uint64_t>(step) << 32);
  p.lambda = sample_beta(alpha, alpha, lam);
  OpRng perm(seed, mixup_stream(epoch, 1), static_cast<uint64_t>(step) << 32);
  p.perm.resize(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) p.perm[static_cast<size_t>(i)] = i;
  for (int64_t i = batch - 1; i > 0; --i)
    std::swap(p.perm[static_cast<size_t>(i)], p.perm[static_cast<size_t>(perm.randint(0, i + 1))]);
  return p;
}

Tensor mixup_apply(const Tensor& x, const MixupParams& p) {
  SIAM_CHECK(x.defined() && x.dim() >= 1, "mixup: expected a (B, ...) tensor");
  SIAM_CHECK(x.dtype() == DType::f32, "mixup: expected f32, got ", dtype_name(x.dtype()));
  SIAM_CHECK(x.is_cpu(), "mixup: expected a CPU tensor");
  const int64_t B = x.shape()[0];
  SIAM_CHECK(static_cast<int64_t>(p.perm.size()) == B, "mixup: permutation of ", p.perm.size(), " for a batch of ", B);
  const Tensor xc = x.is_contiguous() ? x : x.contiguous();
  const int64_t row = B > 0 ? xc.numel() / B : 0;
  Tensor out = empty(x.shape(), DType::f32);
  const float* s = xc.data<float>();
  float* d = out.data<float>();
  const float l = static_cast<float>(p.lambda), k = static_cast<float>(1.0 - p.lambda);
  for (int64_t i = 0; i < B; ++i) {
    const int64_t j = p.perm[static_cast<size_t>(i)];
    SIAM_CHECK(j >= 0 && j < B, "mixup: permutation entry ", j, " outside [0, ", B, ")");
    const float* a = s + i * row;
    const float* b = s + j * row;
    float* o = d + i * row;
    for (int64_t t = 0; t < row; ++t) o[t] = l * a[t] + k * b[t];
  }
  return out;
}

MixupResult mixup(const Tensor& x, double alpha, uint64_t seed, uint64_t epoch, int64_t step) {
  SIAM_CHECK(x.defined() && x.dim() >= 1, "mixup: expected a (B, ...) tensor");
  MixupParams p = sample_mixup(x.shape()[0], alpha, seed, epoch, step);
  MixupResult r{mixup_apply(x, p), from_vector_i64(p.perm, {static_cast<int64_t>(p.perm.size())}), p.lambda};
  return r;
}

}  // namespace siam::data

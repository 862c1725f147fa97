// Fused siamese losses against their unfused compositions, forward + backward through the op front-ends.
//
//   BM_nce_fused/N/D    nt_xent(z1, z2, 0.1): tiled kernel (kernels/cpu/infonce.h), 2N rows
//   BM_nce_unfused/N/D  cat, normalize, matmul, scale, diagonal mask, cross_entropy (2N x 2N logits)
//   BM_xcorr_fused/N/D      barlow_twins_loss(z1, z2, 5e-3, 1e-5) (kernels/cpu/xcorr.h)
//   BM_xcorr_unfused/N/D    mean, var, sub, div, matmul, diagonal / off-diagonal sums of squares
// Counters: flops (InfoNCE: 6 M^2 D useful work for forward + backward, M = 2N, as KERNEL_NOTES.md counts
// it, not counting recomputation; xcorr: 2 N D^2 forward + 4 N D^2 backward), bytes_peak (the high-water mark
// of tensor memory above the inputs during forward + backward, from the CPU allocator's statistics, plus
// the tiled kernel's scratch, which it allocates outside the allocator: infonce_workspace_elems).
// Run: OMP_NUM_THREADS=2 build/bench/siam_bench --benchmark_filter='BM_(infonce|xcorr)_'
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <vector>

#include "engine/core/storage.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/ops/siamese.h"
#include "engine/tensor.h"
#include "kernels/cpu/infonce.h"

namespace {

using siam::Tensor;
constexpr double kMinTime = 0.1;
constexpr double kTemp = 0.1;

Tensor nt_xent_unfused(const Tensor& z1, const Tensor& z2, double t) {
  const int64_t n = z1.size(0), m = 2 * n;
  Tensor z = siam::normalize(siam::cat({z1, z2}, 0), 1);                  // (2N, D)
  Tensor s = siam::mul(siam::matmul(z, z.t()), 1.0 / t);                   // (2N, 2N)
  s = siam::add(s, siam::mul(siam::eye(m, z1.options()), -1e9));           // mask self-similarity
  std::vector<int64_t> target(m);
  for (int64_t i = 0; i < m; ++i) target[i] = (i + n) % m;
  return siam::cross_entropy(s, siam::from_vector_i64(target, {m}));
}

Tensor xcorr_unfused(const Tensor& z1, const Tensor& z2, double lambda, double eps) {
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

// Runs loss_fn forward + backward each iteration; bytes_peak from the allocator's high-water mark.
template <class F>
void run_loss(benchmark::State& st, int64_t n, int64_t d, F loss_fn, double flops, double extra_bytes) {
  Tensor z1 = siam::randn({n, d}).set_requires_grad(true), z2 = siam::randn({n, d}).set_requires_grad(true);
  size_t peak = 0;
  for (auto _ : st) {
    z1.set_grad(Tensor());
    z2.set_grad(Tensor());
    const size_t base = siam::cpu_alloc_stats().allocated_bytes;
    siam::cpu_reset_peak_stats();
    Tensor l = loss_fn(z1, z2);
    l.backward();
    benchmark::DoNotOptimize(z1.grad().raw_data());
    peak = std::max(peak, siam::cpu_alloc_stats().peak_allocated_bytes - base);
  }
  st.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = double(peak) + extra_bytes;
}

void BM_nce_fused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1), m = 2 * n;
  siam::kernels::cpu::InfonceArgs a;
  a.rows = a.cols = m;
  a.dim = d;
  const double ws = 4.0 * double(siam::kernels::cpu::infonce_workspace_elems(a, omp_get_max_threads()));
  run_loss(st, n, d, [](const Tensor& a1, const Tensor& a2) { return siam::nt_xent(a1, a2, kTemp); },
           6.0 * double(m) * double(m) * double(d), ws);
}
void BM_nce_unfused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1), m = 2 * n;
  run_loss(st, n, d, [](const Tensor& a1, const Tensor& a2) { return nt_xent_unfused(a1, a2, kTemp); },
           6.0 * double(m) * double(m) * double(d), 0.0);
}
void nce_args(benchmark::internal::Benchmark* b) {
  for (int64_t n : {256, 1024, 4096}) b->Args({n, 128});
  b->ArgNames({"N", "D"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_nce_fused)->Apply(nce_args);
BENCHMARK(BM_nce_unfused)->Apply(nce_args);

void BM_xcorr_fused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  run_loss(st, n, d, [](const Tensor& a1, const Tensor& a2) { return siam::barlow_twins_loss(a1, a2, 5e-3, 1e-5); },
           6.0 * double(n) * double(d) * double(d), 4.0 * double(d) * double(d));  // + the backward's dC scratch
}
void BM_xcorr_unfused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  run_loss(st, n, d, [](const Tensor& a1, const Tensor& a2) { return xcorr_unfused(a1, a2, 5e-3, 1e-5); },
           6.0 * double(n) * double(d) * double(d), 0.0);
}
void xcorr_args(benchmark::internal::Benchmark* b) {
  b->Args({256, 2048})->ArgNames({"N", "D"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_xcorr_fused)->Apply(xcorr_args);
BENCHMARK(BM_xcorr_unfused)->Apply(xcorr_args);

}  // namespace

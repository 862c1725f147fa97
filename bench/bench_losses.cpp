// Fused consistency, whitening and Sinkhorn ops against their unfused compositions of engine ops, through the
// op front-ends, forward + backward (Sinkhorn: forward only, it has no gradient).
//
//   BM_whiten_cholesky/M/D        whiten(x) (kernels/cpu/whiten.h): Cholesky through LAPACK, products by gemm
//   BM_whiten_newton_schulz/M/D   whiten(x, 0, newton_schulz, 5): fused iterations and their backward
//   BM_whiten_unfused/M/D         the same 5 Newton-Schulz iterations composed of mean, sub, matmul, mul, div, sqrt
//                                 (the engine has no Cholesky primitive to compose the other form from)
//   BM_sinkhorn_fused/B/K/log     sinkhorn(scores, 0.05, 3, log) (kernels/cpu/sinkhorn.h)
//   BM_sinkhorn_unfused/B/K       SwAV's loop: exp, div, t, sum over dims, div, ... (plain domain only)
//   BM_nmse_fused/N/D             normalized_mse(p, z) (kernels/cpu/consistency.h)
//   BM_nmse_unfused/N/D           mean(2 - 2 sum(normalize(p) * normalize(z), 1))
//   BM_vicreg_fused/N/D           25 inv + 25 var + cov from vicreg_terms(z1, z2): Gram form when N < D
//   BM_vicreg_unfused/N/D         mse_loss, var, sqrt, relu, mean, matmul(zc^T, zc), off-diagonal mask, square, sum
// Counters: flops (the useful work, counted the same for both variants: whitening 2 M D^2 per M x D x D product,
// 2 forward (covariance, whitened output) and 3 backward, plus for Newton-Schulz 2 D^3 per D x D x D product,
// 3 forward and 9 backward per iteration after the first; VICReg the D x D covariance's 2 N D^2 per branch
// forward and twice that backward, although the fused form does 2 N^2 D when N < D), bytes (Sinkhorn and
// normalized MSE, memory-bound: the compulsory traffic, inputs read and outputs written once), bytes_peak (high-water
// mark of tensor memory above the inputs during forward + backward from the CPU allocator's statistics, plus the fused
// kernels' std::vector scratch, which bypasses the allocator: counted from their code as noted at each benchmark). Run:
// OMP_NUM_THREADS=2 build/bench/siam_bench --benchmark_filter='BM_(whiten|sinkhorn|nmse|vicreg)_'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/core/random.h"
#include "engine/core/storage.h"
#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/sinkhorn.h"
#include "engine/ops/whiten.h"
#include "engine/tensor.h"

namespace {

using siam::Tensor;
constexpr double kMinTime = 0.1;
constexpr int kNsIters = 5;

// ---- unfused compositions ----

Tensor whiten_ns_unfused(const Tensor& x, int iters) {
  const int64_t m = x.size(0), d = x.size(1);
  Tensor xc = siam::sub(x, siam::mean(x, {0}, true));               // (M, D)
  Tensor sig = siam::div(siam::matmul(xc.t(), xc), double(m - 1));  // (D, D)
  Tensor e = siam::eye(d, x.options());
  Tensor tr = siam::sum(siam::mul(sig, e));  // []
  Tensor sn = siam::div(sig, tr);
  Tensor p = siam::sub(siam::mul(e, 1.5), siam::mul(sn, 0.5));
  for (int k = 1; k < iters; ++k)
    p = siam::sub(siam::mul(p, 1.5), siam::mul(siam::matmul(siam::matmul(siam::matmul(p, p), p), sn), 0.5));
  return siam::matmul(xc, siam::div(p, siam::sqrt(tr)).t());
}

Tensor sinkhorn_unfused(const Tensor& scores, double eps, int iters) {
  Tensor q = siam::exp(siam::div(scores, eps)).t();  // (K, B)
  const int64_t k = q.size(0), b = q.size(1);
  q = siam::div(q, siam::sum(q));
  for (int it = 0; it < iters; ++it) {
    q = siam::div(siam::div(q, siam::sum(q, {1}, true)), double(k));
    q = siam::div(siam::div(q, siam::sum(q, {0}, true)), double(b));
  }
  return siam::mul(q, double(b)).t().contiguous();
}

Tensor nmse_unfused(const Tensor& p, const Tensor& z) {
  return siam::mean(
      siam::rsub(2.0, siam::mul(siam::sum(siam::mul(siam::normalize(p, 1), siam::normalize(z, 1)), {1}), 2.0)));
}

Tensor vicreg_loss(const siam::VicregTerms& t) {
  return siam::add(siam::add(siam::mul(t.invariance, 25.0), siam::mul(t.variance, 25.0)), t.covariance);
}

Tensor vicreg_unfused(const Tensor& z1, const Tensor& z2, double eps) {
  const int64_t n = z1.size(0), d = z1.size(1);
  auto hinge = [eps](const Tensor& z) {
    return siam::mean(siam::relu(siam::rsub(1.0, siam::sqrt(siam::add(siam::var(z, {0}, 1), eps)))));
  };
  auto off = [n, d](const Tensor& z) {
    Tensor zc = siam::sub(z, siam::mean(z, {0}, true));
    Tensor c = siam::div(siam::matmul(zc.t(), zc), double(n - 1));  // (D, D)
    return siam::sum(siam::square(siam::mul(c, siam::rsub(1.0, siam::eye(d, z.options())))));
  };
  return vicreg_loss({siam::mse_loss(z1, z2), siam::div(siam::add(hinge(z1), hinge(z2)), 2.0),
                      siam::div(siam::add(off(z1), off(z2)), double(d))});
}

// Runs fn forward (+ backward when `backward`) each iteration over inputs made once, after one untimed call;
// bytes_peak from the allocator's high-water mark above what was allocated before the call.
void run(benchmark::State& st, std::vector<Tensor> in, const std::function<Tensor(const std::vector<Tensor>&)>& fn,
         bool backward, double flops, double extra_bytes) {
  size_t peak = 0;
  {  // one untimed call first: page faults of fresh memory and the allocator's cache warm-up are not timed
    Tensor out = fn(in);
    if (backward) out.backward();
  }
  for (auto _ : st) {
    for (auto& t : in)
      if (t.requires_grad()) t.set_grad(Tensor());
    const size_t base = siam::cpu_alloc_stats().allocated_bytes;
    siam::cpu_reset_peak_stats();
    Tensor out = fn(in);
    if (backward) {
      out.backward();
      benchmark::DoNotOptimize(in[0].grad().raw_data());
    } else {
      benchmark::DoNotOptimize(out.raw_data());
    }
    peak = std::max(peak, siam::cpu_alloc_stats().peak_allocated_bytes - base);
  }
  if (flops > 0) st.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = double(peak) + extra_bytes;
}

Tensor leaf(const siam::Shape& s) { return siam::randn(s).set_requires_grad(true); }

// ---- whitening ----

double whiten_flops(int64_t m, int64_t d, bool ns) {
  const double mdd = 2.0 * double(m) * double(d) * double(d), ddd = 2.0 * double(d) * double(d) * double(d);
  return 5 * mdd + (ns ? 12.0 * (kNsIters - 1) * ddd : 0.0);
}
// Training data for whitening: features with some correlation (positive definite for M > D).
Tensor whiten_input(int64_t m, int64_t d) { return siam::randn({m, d}).set_requires_grad(true); }

void BM_whiten_cholesky(benchmark::State& st) {
  const int64_t m = st.range(0), d = st.range(1);
  // scratch: covariance (D, D) in f32 and in f64, the factor in f64 (forward); 3 (D, D) f32 (backward)
  run(
      st, {whiten_input(m, d)}, [](const std::vector<Tensor>& v) { return siam::sum(siam::whiten(v[0])); }, true,
      whiten_flops(m, d, false), 20.0 * double(d) * double(d));
}
void BM_whiten_newton_schulz(benchmark::State& st) {
  const int64_t m = st.range(0), d = st.range(1);
  // scratch: 8 (D, D) f32 matrices in the backward (the forward's 28 D^2 bytes are freed before)
  run(
      st, {whiten_input(m, d)},
      [](const std::vector<Tensor>& v) {
        return siam::sum(siam::whiten(v[0], 0.0, siam::WhitenAlgo::newton_schulz, kNsIters));
      },
      true, whiten_flops(m, d, true), 32.0 * double(d) * double(d));
}
void BM_whiten_unfused(benchmark::State& st) {
  const int64_t m = st.range(0), d = st.range(1);
  run(
      st, {whiten_input(m, d)},
      [](const std::vector<Tensor>& v) { return siam::sum(whiten_ns_unfused(v[0], kNsIters)); }, true,
      whiten_flops(m, d, true), 0.0);
}
void whiten_args(benchmark::internal::Benchmark* b) {
  for (auto [m, d] : {std::pair<int64_t, int64_t>{1024, 128}, {4096, 256}, {1024, 512}}) b->Args({m, d});
  b->ArgNames({"M", "D"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_whiten_cholesky)->Apply(whiten_args);
BENCHMARK(BM_whiten_newton_schulz)->Apply(whiten_args);
BENCHMARK(BM_whiten_unfused)->Apply(whiten_args);

// ---- Sinkhorn (forward only) ----

void BM_sinkhorn_fused(benchmark::State& st) {
  const int64_t b = st.range(0), k = st.range(1);
  const bool log_domain = st.range(2) != 0;
  Tensor s = siam::uniform({b, k}, -1.0, 1.0);
  // scratch: plain 8 (ceil(B / 64) + 1) K bytes (partial prototype sums); log 8 (B + 3 K)
  const double scratch = log_domain ? 8.0 * double(b + 3 * k) : 8.0 * double((b + 63) / 64 + 1) * double(k);
  run(
      st, {s}, [log_domain](const std::vector<Tensor>& v) { return siam::sinkhorn(v[0], 0.05, 3, log_domain); }, false,
      0.0, scratch);
  st.counters["bytes"] = benchmark::Counter(4.0 * double(b * k) * 2, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_sinkhorn_unfused(benchmark::State& st) {
  const int64_t b = st.range(0), k = st.range(1);
  Tensor s = siam::uniform({b, k}, -1.0, 1.0);
  siam::NoGradGuard ng;
  run(
      st, {s}, [](const std::vector<Tensor>& v) { return sinkhorn_unfused(v[0], 0.05, 3); }, false, 0.0, 0.0);
  st.counters["bytes"] = benchmark::Counter(4.0 * double(b * k) * 2, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_sinkhorn_fused)
    ->ArgsProduct({{256, 4096}, {3000}, {0, 1}})
    ->ArgNames({"B", "K", "log"})
    ->MinTime(kMinTime)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sinkhorn_unfused)
    ->ArgsProduct({{256, 4096}, {3000}})
    ->ArgNames({"B", "K"})
    ->MinTime(kMinTime)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- normalized MSE ----

void BM_nmse_fused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  // scratch: 8 N bytes (per-row losses)
  run(
      st, {leaf({n, d}), leaf({n, d})}, [](const std::vector<Tensor>& v) { return siam::normalized_mse(v[0], v[1]); },
      true, 0.0, 8.0 * double(n));
  st.counters["bytes"] = benchmark::Counter(4.0 * double(n * d) * 6, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_nmse_unfused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  run(
      st, {leaf({n, d}), leaf({n, d})}, [](const std::vector<Tensor>& v) { return nmse_unfused(v[0], v[1]); }, true,
      0.0, 0.0);
  st.counters["bytes"] = benchmark::Counter(4.0 * double(n * d) * 6, benchmark::Counter::kIsIterationInvariantRate);
}
void nmse_args(benchmark::internal::Benchmark* b) {
  for (auto [n, d] : {std::pair<int64_t, int64_t>{256, 2048}, {4096, 256}}) b->Args({n, d});
  b->ArgNames({"N", "D"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_nmse_fused)->Apply(nmse_args);
BENCHMARK(BM_nmse_unfused)->Apply(nmse_args);

// ---- VICReg ----

double vicreg_flops(int64_t n, int64_t d) { return 2 * 6.0 * double(n) * double(d) * double(d); }
Tensor vicreg_input(int64_t n, int64_t d) { return siam::add(siam::randn({n, d}), 0.5).set_requires_grad(true); }

void BM_vicreg_fused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  // scratch: 8 N + 16 D bytes
  run(
      st, {vicreg_input(n, d), vicreg_input(n, d)},
      [](const std::vector<Tensor>& v) { return vicreg_loss(siam::vicreg_terms(v[0], v[1])); }, true,
      vicreg_flops(n, d), 8.0 * double(n) + 16.0 * double(d));
}
void BM_vicreg_unfused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  run(
      st, {vicreg_input(n, d), vicreg_input(n, d)},
      [](const std::vector<Tensor>& v) { return vicreg_unfused(v[0], v[1], 1e-4); }, true, vicreg_flops(n, d), 0.0);
}
void vicreg_args(benchmark::internal::Benchmark* b) {
  for (auto [n, d] : {std::pair<int64_t, int64_t>{256, 2048}, {256, 4096}, {2048, 512}}) b->Args({n, d});
  b->ArgNames({"N", "D"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_vicreg_fused)->Apply(vicreg_args);
BENCHMARK(BM_vicreg_unfused)->Apply(vicreg_args);

}  // namespace

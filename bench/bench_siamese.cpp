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
#include "bench/unfused_losses.h"
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

using siam::bench::xcorr_unfused;

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
// 2N = 65536 rows, where the unfused form would need 17 GB for the logits alone (and as much for their
// gradient): one forward + backward, 3.3 TFLOP, about 20 s on 2 cores. Not run by the unfused benchmark.
BENCHMARK(BM_nce_fused)
    ->Args({32768, 128})
    ->ArgNames({"N", "D"})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

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

// ---- the other InfoNCE forms (appended) ----
//   BM_nce_multi_fused/V/N/D    nt_xent_multi over V views of (N, D): M = V N rows, V - 1 positives per row
//   BM_nce_multi_unfused/V/N/D  cat, normalize, matmul, scale, diagonal mask, log_softmax, positive-mask
//                               mean (M x M logits and mask)
//   BM_supcon_fused/M/D/C       supcon(z, labels, 0.1) with labels i mod C (C classes)
//   BM_supcon_unfused/M/D/C     the same composition as BM_nce_multi_unfused on one (M, D) input
// flops 6 M^2 D (useful work, as BM_nce_*); bytes_peak as above (+ the tiled kernel's scratch: the row-lse
// pass's, the same bound as infonce_workspace_elems).

Tensor multi_positive_unfused(const Tensor& x, const std::vector<int64_t>& labels, double t) {
  const int64_t m = x.size(0);
  Tensor z = siam::normalize(x, 1);
  Tensor s = siam::add(siam::mul(siam::matmul(z, z.t()), 1.0 / t), siam::mul(siam::eye(m, x.options()), -1e9));
  Tensor logp = siam::log_softmax(s, 1);  // (M, M)
  std::vector<double> pos(m * m, 0.0), inv(m, 0.0);
  double valid = 0;
  for (int64_t i = 0; i < m; ++i) {
    double c = 0;
    for (int64_t j = 0; j < m; ++j)
      if (j != i && labels[j] == labels[i]) pos[i * m + j] = 1, ++c;
    inv[i] = c > 0 ? 1.0 / c : 0.0;
    valid += c > 0;
  }
  Tensor mask = siam::from_vector(pos, {m, m}, x.options()), w = siam::from_vector(inv, {m}, x.options());
  return siam::div(siam::neg(siam::sum(siam::mul(siam::sum(siam::mul(logp, mask), {1}), w))), valid);
}

// Runs loss_fn(leaves) forward + backward each iteration over `count` leaves of (rows, d).
template <class F>
void run_loss_n(benchmark::State& st, int64_t count, int64_t rows, int64_t d, F loss_fn, double flops,
                double extra_bytes) {
  std::vector<Tensor> xs;
  for (int64_t k = 0; k < count; ++k) xs.push_back(siam::randn({rows, d}).set_requires_grad(true));
  size_t peak = 0;
  for (auto _ : st) {
    for (Tensor& x : xs) x.set_grad(Tensor());
    const size_t base = siam::cpu_alloc_stats().allocated_bytes;
    siam::cpu_reset_peak_stats();
    Tensor l = loss_fn(xs);
    l.backward();
    benchmark::DoNotOptimize(xs[0].grad().raw_data());
    peak = std::max(peak, siam::cpu_alloc_stats().peak_allocated_bytes - base);
  }
  st.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = double(peak) + extra_bytes;
}

double tiled_scratch_bytes(int64_t m, int64_t d) {
  siam::kernels::cpu::InfonceArgs a;
  a.rows = a.cols = m;
  a.dim = d;
  return 4.0 * double(siam::kernels::cpu::infonce_workspace_elems(a, omp_get_max_threads()));
}

void BM_nce_multi_fused(benchmark::State& st) {
  const int64_t v = st.range(0), n = st.range(1), d = st.range(2), m = v * n;
  run_loss_n(st, v, n, d, [](const std::vector<Tensor>& xs) { return siam::nt_xent_multi(xs, kTemp); },
             6.0 * double(m) * double(m) * double(d), tiled_scratch_bytes(m, d));
}
void BM_nce_multi_unfused(benchmark::State& st) {
  const int64_t v = st.range(0), n = st.range(1), d = st.range(2), m = v * n;
  std::vector<int64_t> labels(m);
  for (int64_t i = 0; i < m; ++i) labels[i] = i % n;
  run_loss_n(
      st, v, n, d,
      [&labels](const std::vector<Tensor>& xs) { return multi_positive_unfused(siam::cat(xs, 0), labels, kTemp); },
      6.0 * double(m) * double(m) * double(d), 0.0);
}
void nce_multi_args(benchmark::internal::Benchmark* b) {
  b->Args({4, 256, 128})->Args({8, 512, 128});
  b->ArgNames({"V", "N", "D"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_nce_multi_fused)->Apply(nce_multi_args);
BENCHMARK(BM_nce_multi_unfused)->Apply(nce_multi_args);

void BM_supcon_fused(benchmark::State& st) {
  const int64_t m = st.range(0), d = st.range(1), c = st.range(2);
  std::vector<int64_t> lab(m);
  for (int64_t i = 0; i < m; ++i) lab[i] = i % c;
  Tensor labels = siam::from_vector_i64(lab, {m});
  run_loss_n(st, 1, m, d, [&labels](const std::vector<Tensor>& xs) { return siam::supcon(xs[0], labels, kTemp); },
             6.0 * double(m) * double(m) * double(d), tiled_scratch_bytes(m, d));
}
void BM_supcon_unfused(benchmark::State& st) {
  const int64_t m = st.range(0), d = st.range(1), c = st.range(2);
  std::vector<int64_t> lab(m);
  for (int64_t i = 0; i < m; ++i) lab[i] = i % c;
  run_loss_n(st, 1, m, d, [&lab](const std::vector<Tensor>& xs) { return multi_positive_unfused(xs[0], lab, kTemp); },
             6.0 * double(m) * double(m) * double(d), 0.0);
}
void supcon_args(benchmark::internal::Benchmark* b) {
  b->Args({1024, 128, 100})->Args({4096, 128, 100});
  b->ArgNames({"M", "D", "C"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_supcon_fused)->Apply(supcon_args);
BENCHMARK(BM_supcon_unfused)->Apply(supcon_args);

// ---- MoCo's and CLIP's forms ----
//   BM_moco_fused/N/K/D    moco_infonce(q, k, queue, 0.2): N queries against their keys and a K x D queue;
//                          flops 4 N K D (forward logits and the query gradient; the keys get none)
//   BM_moco_unfused/N/K/D  normalize q, k, queue; [q.k, q queue^T] / t (N x (K + 1)); cross_entropy to column 0
//   BM_clip_fused/N/D      clip_loss(a, b, 0.07); flops 6 N^2 D (logits, then both inputs' gradients)
//   BM_clip_unfused/N/D    normalize a, b; s = a b^T / t; (cross_entropy(s) + cross_entropy(s^T)) / 2

Tensor moco_unfused(const Tensor& q, const Tensor& k, const Tensor& queue, double t) {
  Tensor qn = siam::normalize(q, 1), kn = siam::normalize(k, 1), cn = siam::normalize(queue, 1);
  Tensor pos = siam::sum(siam::mul(qn, kn), {1}, true);                               // (N, 1)
  Tensor logits = siam::mul(siam::cat({pos, siam::matmul(qn, cn.t())}, 1), 1.0 / t);  // (N, K + 1)
  return siam::cross_entropy(logits, siam::zeros({q.size(0)}, siam::DType::i64));
}

Tensor clip_unfused(const Tensor& a, const Tensor& b, double t) {
  const int64_t n = a.size(0);
  Tensor s = siam::mul(siam::matmul(siam::normalize(a, 1), siam::normalize(b, 1).t()), 1.0 / t);  // (N, N)
  std::vector<int64_t> diag(n);
  for (int64_t i = 0; i < n; ++i) diag[i] = i;
  Tensor target = siam::from_vector_i64(diag, {n});
  return siam::mul(siam::add(siam::cross_entropy(s, target), siam::cross_entropy(s.t(), target)), 0.5);
}

void BM_moco_fused(benchmark::State& st) {
  const int64_t n = st.range(0), k = st.range(1), d = st.range(2);
  Tensor queue = siam::randn({k, d});
  run_loss_n(st, 2, n, d, [&](const std::vector<Tensor>& xs) { return siam::moco_infonce(xs[0], xs[1], queue, 0.2); },
             4.0 * double(n) * double(k) * double(d), 0.0);
}
void BM_moco_unfused(benchmark::State& st) {
  const int64_t n = st.range(0), k = st.range(1), d = st.range(2);
  Tensor queue = siam::randn({k, d});
  run_loss_n(st, 2, n, d, [&](const std::vector<Tensor>& xs) { return moco_unfused(xs[0], xs[1].detach(), queue, 0.2); },
             4.0 * double(n) * double(k) * double(d), 0.0);
}
void moco_args(benchmark::internal::Benchmark* b) {
  b->Args({256, 65536, 128})->Args({1024, 16384, 128});
  b->ArgNames({"N", "K", "D"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_moco_fused)->Apply(moco_args);
BENCHMARK(BM_moco_unfused)->Apply(moco_args);

void BM_clip_fused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  run_loss_n(st, 2, n, d, [](const std::vector<Tensor>& xs) { return siam::clip_loss(xs[0], xs[1], 0.07); },
             6.0 * double(n) * double(n) * double(d), tiled_scratch_bytes(n, d));
}
void BM_clip_unfused(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  run_loss_n(st, 2, n, d, [](const std::vector<Tensor>& xs) { return clip_unfused(xs[0], xs[1], 0.07); },
             6.0 * double(n) * double(n) * double(d), 0.0);
}
void clip_args(benchmark::internal::Benchmark* b) {
  b->Args({1024, 128})->Args({4096, 128});
  b->ArgNames({"N", "D"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_clip_fused)->Apply(clip_args);
BENCHMARK(BM_clip_unfused)->Apply(clip_args);

}  // namespace

// CUDA core benchmarks (compiled only into CUDA builds, see bench/CMakeLists.txt): device copy, elementwise,
// reductions, the softmax family, fused cross-entropy and L2 normalization against their compositions,
// dtype conversion and pinned host-to-device copies, all
// through the siam front-ends (so allocator and dispatch costs are included), timed with CUDA events on the
// current stream. Each iteration first overwrites a 256 MiB buffer so the L2 cache (50 MiB on an H200)
// holds nothing of the operands.
//
// Counters (per iteration; rates come from the event time):
//   bytes        bytes per second: each input read once, each output written once (the fewest bytes the op
//                must move)
//   bytes_peak   bytes live at once while the op runs (inputs + output)
//   pct_of_copy  bytes rate as a percentage of kCopyRate, the H200's measured device-to-device copy rate
//                (~4.3 TB/s, read + write counted); BM_copy_cuda measures it on the device at hand
// Without a CUDA device every benchmark reports "no CUDA device" as its error and runs nothing.
// Run: build/bench/siam_bench --benchmark_filter=_cuda
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "bench/smoke.h"
#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/tensor.h"
#include "kernels/cuda/stream.h"

namespace {

using siam::DType;
using siam::Tensor;
using siam::TensorOptions;

constexpr double kCopyRate = 4.3e12;  // bytes/s, H200 device copy (read + write)
constexpr double kMinTime = 0.05;
constexpr int64_t kFlushBytes = int64_t(256) << 20;

bool no_device(benchmark::State& st) {
  if (siam::cuda_available()) return false;
  st.SkipWithError("no CUDA device on this machine");
  return true;
}

TensorOptions dev(DType dt = DType::f32) { return TensorOptions(dt, siam::Device("cuda:0")); }

// Runs op once to warm the allocator, then times each iteration with events after an L2 flush.
template <class F> void run_timed(benchmark::State& st, double bytes_per_iter, double bytes_peak, F&& op) {
  Tensor flush = siam::empty({kFlushBytes}, dev(DType::u8));
  op();
  siam::cuda::Event start(true), stop(true);
  double total_s = 0;
  int64_t n = 0;
  for (auto _ : st) {
    flush.fill_(0.0);  // cudaMemsetAsync
    start.record(siam::cuda::current_stream(0));
    op();
    stop.record(siam::cuda::current_stream(0));
    stop.synchronize();
    const double s = start.elapsed_ms(stop) * 1e-3;
    st.SetIterationTime(s);
    total_s += s;
    ++n;
  }
  st.counters["bytes"] = benchmark::Counter(bytes_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = bytes_peak;
  if (n > 0 && total_s > 0) st.counters["pct_of_copy"] = 100.0 * bytes_per_iter * n / total_s / kCopyRate;
}

void BM_copy_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n}, dev());
  Tensor y;
  run_timed(st, 2.0 * n * 4, 2.0 * n * 4, [&] { y = x.clone(); });
}
BENCHMARK(BM_copy_cuda)->Arg(1 << 26)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_add_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0);
  Tensor a = siam::randn({n}, dev()), b = siam::randn({n}, dev());
  Tensor y;
  run_timed(st, 3.0 * n * 4, 3.0 * n * 4, [&] { y = siam::add(a, b); });
}
BENCHMARK(BM_add_cuda)->Arg(1 << 20)->Arg(1 << 26)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// The name for the elementwise figure: a unary op (x * s) on 64 Mi f32.
void BM_elementwise_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n}, dev());
  Tensor y;
  run_timed(st, 2.0 * n * 4, 2.0 * n * 4, [&] { y = siam::mul(x, 1.5); });
}
BENCHMARK(BM_elementwise_cuda)->Arg(1 << 26)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Bias add: (rows, 1024) + (1024): the broadcast path.
void BM_add_bias_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0), cols = 1024;
  Tensor a = siam::randn({n / cols, cols}, dev()), b = siam::randn({cols}, dev());
  Tensor y;
  run_timed(st, 2.0 * n * 4 + cols * 4, 2.0 * n * 4, [&] { y = siam::add(a, b); });
}
BENCHMARK(BM_add_bias_cuda)->Arg(1 << 26)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_gelu_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n}, dev());
  Tensor y;
  run_timed(st, 2.0 * n * 4, 2.0 * n * 4, [&] { y = siam::gelu(x); });
}
BENCHMARK(BM_gelu_cuda)->Arg(1 << 26)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Sum of all elements (one long row: the split path).
void BM_sum_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n}, dev());
  Tensor y;
  run_timed(st, n * 4.0, n * 4.0, [&] { y = siam::sum(x); });
}
BENCHMARK(BM_sum_cuda)->Arg(1 << 26)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Row sums of (n / cols, cols) and column sums (the batch reduction of a bias gradient).
void BM_sum_rows_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0), cols = st.range(1);
  Tensor x = siam::randn({n / cols, cols}, dev());
  Tensor y;
  run_timed(st, n * 4.0 + n / cols * 4.0, n * 4.0, [&] { y = siam::sum(x, {1}); });
}
BENCHMARK(BM_sum_rows_cuda)
    ->Args({1 << 26, 128})
    ->Args({1 << 26, 8192})
    ->MinTime(kMinTime)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_sum_dim0_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0), cols = st.range(1);
  Tensor x = siam::randn({n / cols, cols}, dev());
  Tensor y;
  run_timed(st, n * 4.0 + cols * 4.0, n * 4.0, [&] { y = siam::sum(x, {0}); });
}
BENCHMARK(BM_sum_dim0_cuda)
    ->Args({1 << 26, 256})
    ->Args({1 << 26, 65536})
    ->MinTime(kMinTime)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_softmax_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t rows = st.range(0), cols = st.range(1), n = rows * cols;
  Tensor x = siam::randn({rows, cols}, dev());
  Tensor y;
  run_timed(st, 2.0 * n * 4, 2.0 * n * 4, [&] { y = siam::softmax(x, 1); });
}
BENCHMARK(BM_softmax_cuda)
    ->Args({65536, 1000})
    ->Args({4096, 16384})
    ->MinTime(kMinTime)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_logsumexp_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t rows = st.range(0), cols = st.range(1), n = rows * cols;
  Tensor x = siam::randn({rows, cols}, dev());
  Tensor y;
  run_timed(st, n * 4.0 + rows * 4.0, n * 4.0, [&] { y = siam::logsumexp(x, 1); });
}
BENCHMARK(BM_logsumexp_cuda)->Args({65536, 1000})->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Cross-entropy forward and backward over (N, C) logits with class indices: the fused kernels (the front-end's
// CUDA path) against the composition of primitives (log_softmax, gather, mean) on the same device. bytes
// counts one read of the logits forward and one read plus one write backward; bytes_peak the logits, their
// gradient and what the variant keeps for backward ((N) lse fused, the (N, C) log-probabilities unfused).
void cross_entropy_bench(benchmark::State& st, bool fused) {
  if (no_device(st)) return;
  const int64_t rows = st.range(0), cols = st.range(1), n = rows * cols;
  Tensor x = siam::randn({rows, cols}, dev());
  Tensor t = siam::zeros({rows}, dev(DType::i64));  // class 0 for every row
  const double peak = fused ? 2.0 * n * 4 + rows * 8.0 : 3.0 * n * 4;
  run_timed(st, 3.0 * n * 4, peak, [&] {
    Tensor xl = x.detach();
    xl.set_requires_grad(true);
    if (fused)
      siam::cross_entropy(xl, t).backward();
    else
      siam::mean(siam::neg(siam::gather(siam::log_softmax(xl, 1), 1, t.unsqueeze(1)))).backward();
  });
}
void BM_cross_entropy_cuda(benchmark::State& st) { cross_entropy_bench(st, true); }
void BM_cross_entropy_unfused_cuda(benchmark::State& st) { cross_entropy_bench(st, false); }
BENCHMARK(BM_cross_entropy_cuda)->Args({8192, 1000})->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_cross_entropy_unfused_cuda)
    ->Args({8192, 1000})
    ->MinTime(kMinTime)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// L2 normalization of (rows, dim) embeddings, forward and backward: fused against x / max(|x|, eps) composed.
void normalize_bench(benchmark::State& st, bool fused) {
  if (no_device(st)) return;
  const int64_t rows = st.range(0), cols = st.range(1), n = rows * cols;
  Tensor x = siam::randn({rows, cols}, dev());
  Tensor g = siam::randn({rows, cols}, dev());
  run_timed(st, 5.0 * n * 4, 4.0 * n * 4, [&] {
    Tensor xl = x.detach();
    xl.set_requires_grad(true);
    Tensor y = fused ? siam::normalize(xl, 1) : siam::div(xl, siam::clamp_min(siam::norm(xl, {1}, true), 1e-12));
    y.backward(g);
  });
}
void BM_normalize_cuda(benchmark::State& st) { normalize_bench(st, true); }
void BM_normalize_unfused_cuda(benchmark::State& st) { normalize_bench(st, false); }
BENCHMARK(BM_normalize_cuda)->Args({65536, 256})->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_normalize_unfused_cuda)
    ->Args({65536, 256})
    ->MinTime(kMinTime)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_convert_bf16_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n}, dev());
  Tensor y;
  run_timed(st, n * 6.0, n * 6.0, [&] { y = x.to(DType::bf16); });
}
BENCHMARK(BM_convert_bf16_cuda)->Arg(1 << 26)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Host to device from pinned memory (a data-loader batch): the link's rate, not HBM's.
void BM_h2d_pinned_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0);
  Tensor h = siam::randn({n}).pin_memory();
  Tensor d;
  run_timed(st, n * 4.0, n * 8.0, [&] { d = h.to(siam::Device("cuda:0"), /*non_blocking=*/true); });
}
BENCHMARK(BM_h2d_pinned_cuda)->Arg(1 << 24)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// The emulated smoke run's registrations (bench/smoke.h).
const bool kSmokeRegistered = [] {
  if (!siam::bench::smoke_run()) return false;
  using siam::bench::smoke;
  smoke({{"BM_copy_cuda", BM_copy_cuda},
         {"BM_add_cuda", BM_add_cuda},
         {"BM_elementwise_cuda", BM_elementwise_cuda},
         {"BM_add_bias_cuda", BM_add_bias_cuda},
         {"BM_gelu_cuda", BM_gelu_cuda},
         {"BM_sum_cuda", BM_sum_cuda},
         {"BM_convert_bf16_cuda", BM_convert_bf16_cuda},
         {"BM_h2d_pinned_cuda", BM_h2d_pinned_cuda}},
        {{4096}}, true);
  smoke("BM_sum_rows_cuda", BM_sum_rows_cuda, {{4096, 128}}, true);
  smoke("BM_sum_dim0_cuda", BM_sum_dim0_cuda, {{4096, 256}}, true);
  smoke({{"BM_softmax_cuda", BM_softmax_cuda},
         {"BM_logsumexp_cuda", BM_logsumexp_cuda},
         {"BM_cross_entropy_cuda", BM_cross_entropy_cuda},
         {"BM_cross_entropy_unfused_cuda", BM_cross_entropy_unfused_cuda},
         {"BM_normalize_cuda", BM_normalize_cuda},
         {"BM_normalize_unfused_cuda", BM_normalize_unfused_cuda}},
        {{64, 100}}, true);
  return true;
}();

}  // namespace

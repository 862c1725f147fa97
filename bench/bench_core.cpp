// Core CPU benchmarks: GEMM (raw OpenBLAS and siam::matmul), elementwise ops, reductions and the softmax
// family through the siam op front-ends, plus two napkin limits (BM_memcpy_ref, BM_fma_ref) so every figure
// can be read as a ratio to what the machine can do.
//
// Counters (per iteration, reported as rates where they are rates, see --benchmark_format=json):
//   flops       floating-point operations per second (GEMM: 2*m*n*k per product)
//   bytes       bytes per second, counting each input read once and each output written once (the fewest
//               bytes the op must move; what it actually moves can only be more)
//   bytes_peak  bytes live at once while the op runs (inputs + output), computed from the shapes
// All benchmarks use wall time (UseRealTime): the work is spread over OpenMP threads.
// Run: OMP_NUM_THREADS=2 build/bench/siam_bench --benchmark_filter=_cpu
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "engine/tensor.h"

namespace {

using siam::Tensor;
constexpr double kMinTime = 0.1;  // seconds per benchmark: keeps the whole file under 2 minutes
constexpr int64_t kF32 = 4;

void set_bytes(benchmark::State& st, double bytes_per_iter, double bytes_peak) {
  st.counters["bytes"] = benchmark::Counter(bytes_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = bytes_peak;
}

// ---- napkin limits --------------------------------------------------------------------------------

// memcpy of n f32 split over the OpenMP threads into a buffer touched beforehand: the memory bandwidth the
// elementwise ops can hope for (bytes read + bytes written).
void BM_memcpy_ref(benchmark::State& st) {
  const int64_t n = st.range(0);
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);
  for (auto _ : st) {
#pragma omp parallel
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
      std::memcpy(dst.data() + lo, src.data() + lo, (hi - lo) * sizeof(float));
    }
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2.0 * n * kF32, 2.0 * n * kF32);
}
BENCHMARK(BM_memcpy_ref)->Arg(1 << 24)->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);

// Peak f32 FMA rate on all OpenMP threads: independent FMA chains in registers, no memory traffic.
void BM_fma_ref(benchmark::State& st) {
  constexpr int64_t kIters = 1 << 20;
  constexpr int kChains = 12;  // enough independent chains to cover FMA latency x ports
#if defined(__AVX512F__)
  constexpr int kLanes = 16;
#elif defined(__FMA__)
  constexpr int kLanes = 8;
#else
  constexpr int kLanes = 1;
#endif
  int threads = 1;
  for (auto _ : st) {
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
      threads = omp_get_num_threads();
#if defined(__AVX512F__)
      __m512 acc[kChains];
      const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(float(c));
      for (int64_t i = 0; i < kIters; ++i)
        for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
      alignas(64) float tmp[16];
      for (int c = 0; c < kChains; ++c) {
        _mm512_store_ps(tmp, acc[c]);
        for (float v : tmp) sink += v;
      }
#elif defined(__FMA__)
      __m256 acc[kChains];
      const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
      for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(float(c));
      for (int64_t i = 0; i < kIters; ++i)
        for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
      float tmp[8];
      for (int c = 0; c < kChains; ++c) {
        _mm256_storeu_ps(tmp, acc[c]);
        for (float v : tmp) sink += v;
      }
#else
      float acc[kChains];
      for (int c = 0; c < kChains; ++c) acc[c] = float(c);
      for (int64_t i = 0; i < kIters; ++i)
        for (int c = 0; c < kChains; ++c) acc[c] = std::fma(acc[c], 0.999999f, 1e-7f);
      for (int c = 0; c < kChains; ++c) sink += acc[c];
#endif
    }
    benchmark::DoNotOptimize(sink);
  }
  st.counters["flops"] =
      benchmark::Counter(2.0 * kLanes * kChains * kIters * threads, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["threads"] = threads;
  st.counters["bytes_peak"] = 0;
}
BENCHMARK(BM_fma_ref)->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- GEMM -----------------------------------------------------------------------------------------
// Args (m, n, k): C (m, n) = A (m, k) @ B (k, n), row-major f32. 256x4608x576 is a ResNet 3x3 conv as
// im2col GEMM (64 in-channels * 9 = 576; 256 out-channels; 4608 output pixels).
void gemm_args(benchmark::internal::Benchmark* b) {
  for (int64_t s : {256, 512, 1024, 2048, 4096}) b->Args({s, s, s});
  b->Args({256, 4608, 576});
  b->ArgNames({"m", "n", "k"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}

void set_gemm_counters(benchmark::State& st, int64_t m, int64_t n, int64_t k) {
  st.counters["flops"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = double(kF32 * (m * k + k * n + m * n));
}

void BM_sgemm_cpu(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  Tensor a = siam::randn({m, k}), b = siam::randn({k, n}), c = siam::zeros({m, n});  // (m,k) (k,n) (m,n)
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0f, a.data<float>(), int(k),
                b.data<float>(), int(n), 0.0f, c.data<float>(), int(n));
    benchmark::ClobberMemory();
  }
  set_gemm_counters(st, m, n, k);
}
BENCHMARK(BM_sgemm_cpu)->Apply(gemm_args);

// siam::matmul: the same product through the op front-end (allocates its output each call).
void BM_matmul_cpu(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  Tensor a = siam::randn({m, k}), b = siam::randn({k, n});  // (m,k) (k,n)
  for (auto _ : st) {
    Tensor c = siam::matmul(a, b);  // (m,n)
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_gemm_counters(st, m, n, k);
}
BENCHMARK(BM_matmul_cpu)->Apply(gemm_args);

// ---- elementwise ----------------------------------------------------------------------------------
// Arg: number of f32 elements (1M: in cache; 16M = 64 MiB per tensor: from memory).
void ew_args(benchmark::internal::Benchmark* b) {
  b->Arg(1 << 20)->Arg(1 << 24)->ArgNames({"n"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void BM_add_cpu(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor a = siam::randn({n}), b = siam::randn({n});  // (n) (n)
  for (auto _ : st) {
    Tensor y = siam::add(a, b);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, 3.0 * n * kF32, 3.0 * n * kF32);
}
BENCHMARK(BM_add_cpu)->Apply(ew_args);

// Broadcast multiply: x (n/1024, 1024) * w (1024), as a per-channel scale.
void BM_mul_cpu(benchmark::State& st) {
  const int64_t n = st.range(0), c = 1024;
  Tensor x = siam::randn({n / c, c}), w = siam::randn({c});  // (n/c, c) (c)
  for (auto _ : st) {
    Tensor y = siam::mul(x, w);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, (2.0 * n + c) * kF32, (2.0 * n + c) * kF32);
}
BENCHMARK(BM_mul_cpu)->Apply(ew_args);

void BM_relu_cpu(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n});  // (n)
  for (auto _ : st) {
    Tensor y = siam::relu(x);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, 2.0 * n * kF32, 2.0 * n * kF32);
}
BENCHMARK(BM_relu_cpu)->Apply(ew_args);

void BM_exp_cpu(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n});  // (n)
  for (auto _ : st) {
    Tensor y = siam::exp(x);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, 2.0 * n * kF32, 2.0 * n * kF32);
}
BENCHMARK(BM_exp_cpu)->Apply(ew_args);

// The other exp-based activations (f32 through kernels/common/fastmath.h; gelu's erf stays libm's).
void BM_sigmoid_cpu(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n});  // (n)
  for (auto _ : st) {
    Tensor y = siam::sigmoid(x);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, 2.0 * n * kF32, 2.0 * n * kF32);
}
BENCHMARK(BM_sigmoid_cpu)->Apply(ew_args);

void BM_tanh_cpu(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n});  // (n)
  for (auto _ : st) {
    Tensor y = siam::tanh(x);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, 2.0 * n * kF32, 2.0 * n * kF32);
}
BENCHMARK(BM_tanh_cpu)->Apply(ew_args);

void BM_gelu_cpu(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor x = siam::randn({n});  // (n)
  for (auto _ : st) {
    Tensor y = siam::gelu(x);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, 2.0 * n * kF32, 2.0 * n * kF32);
}
BENCHMARK(BM_gelu_cpu)->Apply(ew_args);

// ---- reductions over (4096, 4096) ------------------------------------------------------------------
void red_args(benchmark::internal::Benchmark* b) {
  b->Args({4096, 4096})->ArgNames({"rows", "cols"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void BM_sum_cpu(benchmark::State& st) {
  const int64_t r = st.range(0), c = st.range(1);
  Tensor x = siam::randn({r, c});  // (r, c)
  for (auto _ : st) {
    Tensor y = siam::sum(x);  // ()
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, double(r * c + 1) * kF32, double(r * c + 1) * kF32);
}
BENCHMARK(BM_sum_cpu)->Apply(red_args);

// Over the last (contiguous) dim: one result per row.
void BM_sum_rows_cpu(benchmark::State& st) {
  const int64_t r = st.range(0), c = st.range(1);
  Tensor x = siam::randn({r, c});  // (r, c)
  for (auto _ : st) {
    Tensor y = siam::sum(x, {1});  // (r)
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, double(r * c + r) * kF32, double(r * c + r) * kF32);
}
BENCHMARK(BM_sum_rows_cpu)->Apply(red_args);

// Over dim 0 (strided): one result per column, as a bias gradient.
void BM_sum_cols_cpu(benchmark::State& st) {
  const int64_t r = st.range(0), c = st.range(1);
  Tensor x = siam::randn({r, c});  // (r, c)
  for (auto _ : st) {
    Tensor y = siam::sum(x, {0});  // (c)
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, double(r * c + c) * kF32, double(r * c + c) * kF32);
}
BENCHMARK(BM_sum_cols_cpu)->Apply(red_args);

// ---- softmax family over rows ---------------------------------------------------------------------
// Args (rows, cols): (4096, 1000) as classifier logits, (256, 4096) as an NCE similarity matrix.
void sm_args(benchmark::internal::Benchmark* b) {
  b->Args({4096, 1000})
      ->Args({256, 4096})
      ->ArgNames({"rows", "cols"})
      ->MinTime(kMinTime)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

void BM_softmax_cpu(benchmark::State& st) {
  const int64_t r = st.range(0), c = st.range(1);
  Tensor x = siam::randn({r, c});  // (r, c)
  for (auto _ : st) {
    Tensor y = siam::softmax(x, -1);  // (r, c)
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, 2.0 * r * c * kF32, 2.0 * r * c * kF32);
}
BENCHMARK(BM_softmax_cpu)->Apply(sm_args);

void BM_log_softmax_cpu(benchmark::State& st) {
  const int64_t r = st.range(0), c = st.range(1);
  Tensor x = siam::randn({r, c});  // (r, c)
  for (auto _ : st) {
    Tensor y = siam::log_softmax(x, -1);  // (r, c)
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, 2.0 * r * c * kF32, 2.0 * r * c * kF32);
}
BENCHMARK(BM_log_softmax_cpu)->Apply(sm_args);

void BM_logsumexp_cpu(benchmark::State& st) {
  const int64_t r = st.range(0), c = st.range(1);
  Tensor x = siam::randn({r, c});  // (r, c)
  for (auto _ : st) {
    Tensor y = siam::logsumexp(x, -1);  // (r)
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(st, double(r * c + r) * kF32, double(r * c + r) * kF32);
}
BENCHMARK(BM_logsumexp_cpu)->Apply(sm_args);

}  // namespace

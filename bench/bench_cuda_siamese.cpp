// Fused siamese kernels on CUDA against their unfused compositions (compiled only into CUDA builds, see
// bench/CMakeLists.txt), through the op front-ends, timed with CUDA events on the current stream after an L2
// flush (a 256 MiB overwrite; the H200's L2 is 50 MiB). Without a device every benchmark reports
// "no CUDA device" and runs nothing.
//
//   BM_nce_fused_cuda/N/D    nt_xent(z1, z2, 0.1) forward + backward (kernels/cuda/infonce.h), 2N rows
//   BM_nce_unfused_cuda/N/D  cat, normalize, matmul, scale, diagonal mask, cross_entropy over the 2N x 2N
//                            logits on the device (N = 65536 is left out: its 2N x 2N f32 matrix is 69 GB)
//   BM_nce_{fused,unfused}_bf16_cuda/N/D  the same with bf16 inputs: the fused loss on bf16 tensor cores
//                            (kernel2), the unfused matmul under autocast; pct_of_peak against 989 TFLOP/s
//   BM_ema_fused_cuda/P      optim::ema_update over a ResNet-50's parameter shapes (P = 1) (kernels/cuda/
//                            multi_tensor.h); pct_of_copy against 12 bytes/parameter at kCopyRate
//   BM_ema_pertensor_cuda/P  the same EMA one tensor at a time through engine ops (mul_, add_)
//   BM_xcorr_fused_cuda/N/D  barlow_twins_loss forward + backward on CUDA (kernels/cuda/xcorr.h: the column
//                            kernels, and C = zh1^T zh2 and the two dzh products through cuBLASLt)
//   BM_xcorr_unfused_cuda/N/D  the composition: mean, var, standardize, matmul, identity-masked sums
//   BM_sinkhorn_cuda/B/K, BM_nmse_cuda/N/D, BM_vicreg_cuda/N/D  the other fused losses (kernels/cuda/
//                            sinkhorn.h, consistency.h, xcorr.h) at the methods' large-batch sizes
// Counters: flops (InfoNCE 6 M^2 D, M = 2N, the useful forward + backward work; recomputation not counted),
// bytes (EMA), bytes_peak (the caching allocator's high-water mark of allocated bytes above the inputs during
// the iteration).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "bench/smoke.h"
#include "bench/unfused_losses.h"
#include "engine/core/autocast.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/shape.h"
#include "engine/ops/consistency.h"
#include "engine/ops/reduce.h"
#include "engine/ops/siamese.h"
#include "engine/ops/sinkhorn.h"
#include "engine/optim/ema.h"
#include "engine/tensor.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/stream.h"
#include "models/resnet.h"

namespace {

using siam::DType;
using siam::Tensor;
using siam::TensorOptions;

constexpr double kCopyRate = 4.3e12;  // bytes/s, H200 device copy (read + write)
constexpr double kMinTime = 0.02;
constexpr double kTemp = 0.1;
constexpr int64_t kFlushBytes = int64_t(256) << 20;

bool no_device(benchmark::State& st) {
  if (siam::cuda_available()) return false;
  st.SkipWithError("no CUDA device on this machine");
  return true;
}

TensorOptions dev(DType dt = DType::f32) { return TensorOptions(dt, siam::Device("cuda:0")); }

// Warms up once, then times each iteration with events after an L2 flush; bytes_peak = the allocator's peak
// allocated bytes during the timed op minus what was allocated before it.
template <class F> void run_timed(benchmark::State& st, F&& op) {
  Tensor flush = siam::empty({kFlushBytes}, dev(DType::u8));
  op();
  siam::cuda::Event start(true), stop(true);
  double peak = 0;
  for (auto _ : st) {
    flush.fill_(0.0);
    siam::cuda::synchronize_device(0);
    const size_t base = siam::cuda::device_alloc_stats(0).allocated_bytes;
    siam::cuda::reset_peak_device_stats(0);
    start.record(siam::cuda::current_stream(0));
    op();
    stop.record(siam::cuda::current_stream(0));
    stop.synchronize();
    st.SetIterationTime(start.elapsed_ms(stop) * 1e-3);
    const double p = static_cast<double>(siam::cuda::device_alloc_stats(0).peak_allocated_bytes - base);
    peak = p > peak ? p : peak;
  }
  st.counters["bytes_peak"] = peak;
}

Tensor nt_xent_unfused(const Tensor& z1, const Tensor& z2, double t) {
  const int64_t n = z1.size(0), m = 2 * n;
  Tensor z = siam::normalize(siam::cat({z1, z2}, 0), 1);         // (2N, D)
  Tensor s = siam::mul(siam::matmul(z, z.t()), 1.0 / t);          // (2N, 2N)
  s = siam::add(s, siam::mul(siam::eye(m, z1.options()), -1e9));  // mask self-similarity
  std::vector<int64_t> target(m);
  for (int64_t i = 0; i < m; ++i) target[i] = (i + n) % m;
  return siam::cross_entropy(s, siam::from_vector_i64(target, {m}).to(z1.device()));
}

template <class F> void run_nce(benchmark::State& st, F&& loss_fn) {
  if (no_device(st)) return;
  const int64_t n = st.range(0), d = st.range(1), m = 2 * n;
  Tensor z1 = siam::randn({n, d}, dev()).set_requires_grad(true);
  Tensor z2 = siam::randn({n, d}, dev()).set_requires_grad(true);
  run_timed(st, [&] {
    z1.set_grad(Tensor());
    z2.set_grad(Tensor());
    loss_fn(z1, z2).backward();
  });
  st.counters["flops"] = benchmark::Counter(6.0 * double(m) * double(m) * double(d),
                                            benchmark::Counter::kIsIterationInvariantRate);
}

void BM_nce_fused_cuda(benchmark::State& st) {
  run_nce(st, [](const Tensor& a, const Tensor& b) { return siam::nt_xent(a, b, kTemp); });
}
void BM_nce_unfused_cuda(benchmark::State& st) {
  run_nce(st, [](const Tensor& a, const Tensor& b) { return nt_xent_unfused(a, b, kTemp); });
}
BENCHMARK(BM_nce_fused_cuda)->Args({4096, 128})->Args({16384, 128})->Args({65536, 128})->MinTime(kMinTime)
    ->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_nce_unfused_cuda)->Args({4096, 128})->Args({16384, 128})->MinTime(kMinTime)->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// bf16 inputs: nt_xent on bf16 tensor cores (kernel2); the unfused composition runs its matmul under autocast
// (cuBLASLt bf16, f32 logits). pct_of_peak: the flops counter against the H200's dense bf16 tensor-core rate.
constexpr double kBf16Peak = 989e12;  // FLOP/s, H200 SXM dense bf16

template <class F> void run_nce_bf16(benchmark::State& st, F&& loss_fn) {
  if (no_device(st)) return;
  const int64_t n = st.range(0), d = st.range(1), m = 2 * n;
  Tensor z1 = siam::randn({n, d}, dev()).to(DType::bf16).set_requires_grad(true);
  Tensor z2 = siam::randn({n, d}, dev()).to(DType::bf16).set_requires_grad(true);
  run_timed(st, [&] {
    z1.set_grad(Tensor());
    z2.set_grad(Tensor());
    loss_fn(z1, z2).backward();
  });
  const double flops = 6.0 * double(m) * double(m) * double(d);
  st.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["pct_of_peak"] =
      benchmark::Counter(100.0 * flops / kBf16Peak, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_nce_fused_bf16_cuda(benchmark::State& st) {
  run_nce_bf16(st, [](const Tensor& a, const Tensor& b) { return siam::nt_xent(a, b, kTemp); });
}
void BM_nce_unfused_bf16_cuda(benchmark::State& st) {
  run_nce_bf16(st, [](const Tensor& a, const Tensor& b) {
    siam::AutocastGuard ac(DType::bf16);
    return nt_xent_unfused(a.to(DType::f32), b.to(DType::f32), kTemp);
  });
}
BENCHMARK(BM_nce_fused_bf16_cuda)->Args({4096, 128})->Args({16384, 256})->Args({32768, 256})->MinTime(kMinTime)
    ->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_nce_unfused_bf16_cuda)->Args({16384, 256})->MinTime(kMinTime)->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ResNet-50's parameters (25,557,032 in 161 tensors, models::resnet50 with its classifier): EMA target and
// online copies on the device; returns the parameter count.
int64_t resnet50_pair(std::vector<Tensor>& target, std::vector<Tensor>& online) {
  int64_t params = 0;
  for (const Tensor& p : siam::models::resnet50({.num_classes = 1000})->parameters()) {
    target.push_back(siam::randn(p.shape(), dev()));
    online.push_back(siam::randn(p.shape(), dev()));
    params += p.numel();
  }
  return params;
}

void BM_ema_fused_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  std::vector<Tensor> target, online;
  const int64_t params = resnet50_pair(target, online);
  run_timed(st, [&] { siam::optim::ema_update(target, online, 0.996); });
  const double bytes = 12.0 * double(params);
  st.counters["params"] = double(params);
  st.counters["bytes"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["limit_us"] = bytes / kCopyRate * 1e6;
}
BENCHMARK(BM_ema_fused_cuda)->Arg(1)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Barlow Twins forward + backward on (N, D) views: loss_fn(z1, z2) timed, 6 N D^2 flops.
template <class F> void run_xcorr(benchmark::State& st, F&& loss_fn) {
  if (no_device(st)) return;
  const int64_t n = st.range(0), d = st.range(1);
  Tensor z1 = siam::randn({n, d}, dev()).set_requires_grad(true);
  Tensor z2 = siam::randn({n, d}, dev()).set_requires_grad(true);
  try {
    run_timed(st, [&] { loss_fn(z1, z2).backward(); });
  } catch (const siam::Error& e) {
    st.SkipWithError(e.what());
    return;
  }
  st.counters["flops"] = benchmark::Counter(6.0 * double(n) * double(d) * double(d),
                                            benchmark::Counter::kIsIterationInvariantRate);
}
void BM_xcorr_fused_cuda(benchmark::State& st) {
  run_xcorr(st, [](const Tensor& a, const Tensor& b) { return siam::barlow_twins_loss(a, b); });
}
void BM_xcorr_unfused_cuda(benchmark::State& st) {  // the composition (bench/unfused_losses.h)
  run_xcorr(st, [](const Tensor& a, const Tensor& b) { return siam::bench::xcorr_unfused(a, b, 5e-3, 1e-5); });
}
void xcorr_cuda_args(benchmark::internal::Benchmark* b) {
  b->Args({4096, 2048})->Args({256, 8192})->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_xcorr_fused_cuda)->Apply(xcorr_cuda_args);
BENCHMARK(BM_xcorr_unfused_cuda)->Apply(xcorr_cuda_args);

// The EMA one tensor at a time through engine ops (t = m t + (1 - m) o: a launch or two per tensor), against
// BM_ema_fused_cuda's one launch over ResNet-50's parameter list.
void BM_ema_pertensor_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  std::vector<Tensor> target, online;
  const int64_t params = resnet50_pair(target, online);
  const double m = 0.996;
  run_timed(st, [&] {
    siam::NoGradGuard ng;
    for (size_t i = 0; i < target.size(); ++i) target[i].mul_(m).add_(online[i], 1.0 - m);
  });
  const double bytes = 12.0 * double(params);
  st.counters["params"] = double(params);
  st.counters["bytes"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ema_pertensor_cuda)->Arg(1)->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMicrosecond);

// The other fused losses on CUDA, forward + backward (Sinkhorn forward only: it has no gradient), at the sizes
// of the methods' large-batch runs: SwAV's B x K scores, BYOL's (N, D) predictions, VICReg's (N, D) views.
void BM_sinkhorn_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t b = st.range(0), k = st.range(1);
  Tensor s = siam::tanh(siam::randn({b, k}, dev()));
  Tensor q;
  run_timed(st, [&] { q = siam::sinkhorn(s, 0.05, 3); });
  st.counters["bytes"] = benchmark::Counter(4.0 * 8.0 * double(b) * double(k),  // 1 + iters passes of B x K
                                            benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_sinkhorn_cuda)->Args({4096, 3000})->Args({65536, 3000})->MinTime(kMinTime)->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_nmse_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0), d = st.range(1);
  Tensor p = siam::randn({n, d}, dev()).set_requires_grad(true), z = siam::randn({n, d}, dev());
  run_timed(st, [&] {
    p.set_grad(Tensor());
    siam::normalized_mse(p, z).backward();
  });
  st.counters["bytes"] = benchmark::Counter(4.0 * 5.0 * double(n) * double(d),  // p, z twice, dp
                                            benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_nmse_cuda)->Args({65536, 256})->MinTime(kMinTime)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_vicreg_cuda(benchmark::State& st) {
  if (no_device(st)) return;
  const int64_t n = st.range(0), d = st.range(1);
  Tensor z1 = siam::randn({n, d}, dev()).set_requires_grad(true);
  Tensor z2 = siam::randn({n, d}, dev()).set_requires_grad(true);
  run_timed(st, [&] {
    siam::VicregTerms t = siam::vicreg_terms(z1, z2);
    siam::add(siam::add(siam::mul(t.invariance, 25.0), siam::mul(t.variance, 25.0)), t.covariance).backward();
  });
  st.counters["flops"] = benchmark::Counter(8.0 * double(n) * double(d) * double(d),  // two covariances, fwd + bwd
                                            benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_vicreg_cuda)->Args({4096, 2048})->Args({256, 8192})->MinTime(kMinTime)->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The emulated smoke run's registrations (bench/smoke.h): 64 rows of 32 features (64 for the bf16 tensor-core
// path), ResNet-50's whole parameter list for the two EMAs.
const bool kSmokeRegistered = [] {
  if (!siam::bench::smoke_run()) return false;
  using siam::bench::smoke;
  smoke({{"BM_nce_fused_cuda", BM_nce_fused_cuda},
         {"BM_nce_unfused_cuda", BM_nce_unfused_cuda},
         {"BM_xcorr_fused_cuda", BM_xcorr_fused_cuda},
         {"BM_xcorr_unfused_cuda", BM_xcorr_unfused_cuda},
         {"BM_nmse_cuda", BM_nmse_cuda},
         {"BM_vicreg_cuda", BM_vicreg_cuda}},
        {{64, 32}}, true);
  smoke("BM_nce_fused_bf16_cuda", BM_nce_fused_bf16_cuda, {{64, 64}}, true);
  smoke("BM_nce_unfused_bf16_cuda", BM_nce_unfused_bf16_cuda, {{64, 64}}, true);
  smoke("BM_sinkhorn_cuda", BM_sinkhorn_cuda, {{64, 30}}, true);
  smoke("BM_ema_fused_cuda", BM_ema_fused_cuda, {{1}}, true);
  smoke("BM_ema_pertensor_cuda", BM_ema_pertensor_cuda, {{1}}, true);
  return true;
}();

}  // namespace

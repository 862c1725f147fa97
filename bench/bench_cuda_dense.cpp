// Dense math on CUDA (compiled only in CUDA builds; each benchmark skips with a reason where no device is
// present). Run on the GPU machine through scripts/gpu_check.sh (filter _cuda).
//   BM_sgemm_cuda          f32 GEMM D = A @ B, square n (cuBLASLt). Args: n, tf32 (0: exact FMA, 1: TF32).
//   BM_gemm_bf16_cuda      bf16 x bf16 -> bf16 GEMM with f32 accumulation, square n. Args: n.
//                          Counters: flops (rate); bf16 also peak_fraction = achieved / 989.4 TFLOP/s, the H200's
//                          dense bf16 tensor-core peak (SXM; TF32's is 494.7, exact f32 runs on the FMA units).
//   BM_conv2d_cuda         conv2d forward through cuDNN at ResNet-50 shapes (batch 64, 224x224 input).
//   BM_conv2d_bwd_cuda     backward-data + backward-filter at the same shapes.
//                          Args: N, C_in, H (= W), C_out, kernel, stride, padding, mode (0: f32 exact, 1: TF32,
//                          2: bf16). Counters: flops (2 per multiply-add; backward 2x forward).
//   BM_resnet18_step_cuda  forward + backward of ResNet-18, CIFAR stem, 3x32x32, training mode, the backward seeded
//                          with a random gradient of the logits (no optimizer). Args: batch, autocast (0: f32
//                          exact, 1: bf16 autocast).
//   BM_resnet50_step_cuda  the same for ResNet-50, ImageNet stem, 3x224x224. Args: batch, autocast.
//                          Counters: items_per_second = images/s; flops = 3 x forward FLOPs (rate).
// Each timed iteration enqueues its work and waits for the device (GEMMs: `reps` products per iteration so a
// wait is under 2 % of it); every benchmark runs a fixed number of iterations after an untimed warm-up that
// fills the algorithm caches (cuDNN's search runs once per shape), so the whole file takes about a minute.
// bytes_peak: operands + result + workspace (GEMM, conv), or the caching allocator's peak (model steps).
#include <benchmark/benchmark.h>

#if defined(SIAM_WITH_CUDA)
#include <algorithm>
#include <string>
#include <vector>

#include "bench/smoke.h"
#include "engine/core/autocast.h"
#include "engine/core/random.h"
#include "engine/ops/conv.h"
#include "engine/ops/linalg.h"
#include "engine/tensor.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/cudnn_conv.h"
#include "kernels/cuda/gemm.h"
#include "models/resnet.h"

namespace {

using siam::Tensor;
namespace kc = siam::kernels::cuda;

constexpr double kH200Bf16Peak = 989.4e12;  // dense bf16, FLOP/s
const siam::Device kDev("cuda:0");

bool need_device(benchmark::State& st) {
  if (siam::cuda_available()) return true;
  st.SkipWithError("no CUDA device on this machine");
  return false;
}

void gemm_bench(benchmark::State& st, kc::DenseType t, bool tf32) {
  if (!need_device(st)) return;
  const int64_t n = st.range(0);
  const siam::DType dt = t == kc::DenseType::bf16 ? siam::DType::bf16 : siam::DType::f32;
  Tensor a = siam::uniform({n, n}, -1, 1, siam::TensorOptions(kDev)), b = siam::uniform({n, n}, -1, 1, siam::TensorOptions(kDev));
  if (dt == siam::DType::bf16) {
    a = siam::detail::cuda_cast_contiguous(a, dt, "bench"), b = siam::detail::cuda_cast_contiguous(b, dt, "bench");
  }
  Tensor d = siam::empty({n, n}, siam::TensorOptions(dt, kDev));
  kc::GemmArgs p;
  p.ab_type = t, p.d_type = t, p.allow_tf32 = tf32, p.device = 0;
  p.m = p.n = p.k = n;
  p.a = a.raw_data(), p.b = b.raw_data(), p.d = d.raw_data();
  p.lda = p.ldb = p.ldd = n;
  siam::detail::DeviceScratch scratch(kDev);
  const double flops = 2.0 * static_cast<double>(n) * n * n;
  // ~2 TFLOP per iteration (one product in the emulated smoke run)
  const int reps = siam::bench::smoke_run() ? 1 : std::max(1, static_cast<int>(2e12 / flops));
  kc::gemm(p, scratch.fn());  // warm-up: heuristic and workspace
  kc::dense_synchronize(0);
  for (auto _ : st) {
    for (int r = 0; r < reps; ++r) kc::gemm(p, scratch.fn());
    kc::dense_synchronize(0);
  }
  st.counters["flops"] = benchmark::Counter(flops * reps, benchmark::Counter::kIsIterationInvariantRate);
  if (t == kc::DenseType::bf16)
    st.counters["peak_fraction"] =
        benchmark::Counter(flops * reps / kH200Bf16Peak, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = static_cast<double>(3 * n * n * static_cast<int64_t>(kc::dense_type_size(t)) +
                                                  static_cast<int64_t>(kc::kGemmMaxWorkspace));
  st.SetLabel(std::string(kc::dense_type_name(t)) + (tf32 ? " tf32" : "") + " reps " + std::to_string(reps));
}

void BM_sgemm_cuda(benchmark::State& st) { gemm_bench(st, kc::DenseType::f32, st.range(1) != 0); }
void BM_gemm_bf16_cuda(benchmark::State& st) { gemm_bench(st, kc::DenseType::bf16, false); }

kc::Conv2dGeom conv_geom(const benchmark::State& st) {
  kc::Conv2dGeom g;
  g.N = st.range(0), g.C = st.range(1), g.H = g.W = st.range(2), g.K = st.range(3), g.R = g.S = st.range(4);
  g.sh = g.sw = st.range(5), g.ph = g.pw = st.range(6);
  g.OH = (g.H + 2 * g.ph - g.R) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - g.S) / g.sw + 1;
  return g;
}

void conv_bench(benchmark::State& st, bool backward) {
  if (!need_device(st)) return;
  const kc::Conv2dGeom g = conv_geom(st);
  const int mode = static_cast<int>(st.range(7));
  const kc::DenseType t = mode == 2 ? kc::DenseType::bf16 : kc::DenseType::f32;
  const bool tf32 = mode == 1;
  const siam::DType dt = mode == 2 ? siam::DType::bf16 : siam::DType::f32;
  auto make = [&](const siam::Shape& s) {
    Tensor v = siam::uniform(s, -1, 1, siam::TensorOptions(kDev));
    return dt == siam::DType::f32 ? v : siam::detail::cuda_cast_contiguous(v, dt, "bench");
  };
  Tensor x = make({g.N, g.C, g.H, g.W}), w = make({g.K, g.C, g.R, g.S}), y = make({g.N, g.K, g.OH, g.OW});
  Tensor gx = siam::empty(x.shape(), x.options()), gw = siam::empty(w.shape(), w.options());
  siam::detail::DeviceScratch scratch(kDev);
  auto step = [&] {
    if (backward) {
      kc::conv2d_backward_data(g, t, tf32, 0, w.raw_data(), y.raw_data(), gx.raw_data(), scratch.fn());
      kc::conv2d_backward_filter(g, t, tf32, 0, x.raw_data(), y.raw_data(), gw.raw_data(), scratch.fn());
    } else {
      kc::conv2d_forward(g, t, tf32, 0, x.raw_data(), w.raw_data(), nullptr, y.raw_data(), scratch.fn());
    }
  };
  step();  // warm-up: the algorithm searches
  kc::dense_synchronize(0);
  for (auto _ : st) {
    step();
    kc::dense_synchronize(0);
  }
  const double fwd = 2.0 * g.N * g.K * g.OH * g.OW * g.C * g.R * g.S;
  st.counters["flops"] = benchmark::Counter(backward ? 2 * fwd : fwd, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = static_cast<double>((x.numel() + w.numel() + y.numel()) * (backward ? 2 : 1)) *
                              static_cast<double>(x.element_size());
  st.SetLabel(std::to_string(g.C) + "->" + std::to_string(g.K) + " " + std::to_string(g.R) + "x" +
              std::to_string(g.S) + " s" + std::to_string(g.sh) + " @" + std::to_string(g.H) + " N" +
              std::to_string(g.N) + (mode == 2 ? " bf16" : mode == 1 ? " tf32" : " f32"));
}

void BM_conv2d_cuda(benchmark::State& st) { conv_bench(st, false); }
void BM_conv2d_bwd_cuda(benchmark::State& st) { conv_bench(st, true); }

// ResNet-50 at 224x224, batch 64: {N, C_in, H, C_out, k, stride, pad}, the distinct shapes of each stage.
void resnet50_shapes(benchmark::internal::Benchmark* b) {
  const std::vector<std::vector<int64_t>> shapes = {
      {64, 3, 224, 64, 7, 2, 3},     // stem
      {64, 64, 56, 64, 3, 1, 1},     // layer1 3x3
      {64, 256, 56, 64, 1, 1, 0},    // layer1 1x1 reduce
      {64, 64, 56, 256, 1, 1, 0},    // layer1 1x1 expand
      {64, 128, 28, 128, 3, 1, 1},   // layer2 3x3
      {64, 256, 14, 256, 3, 1, 1},   // layer3 3x3
      {64, 1024, 14, 256, 1, 1, 0},  // layer3 1x1 reduce
      {64, 512, 7, 512, 3, 1, 1},    // layer4 3x3
      {64, 1024, 14, 2048, 1, 2, 0}, // layer4 downsample
  };
  for (const auto& s : shapes)
    for (int64_t mode : {0, 2}) {
      std::vector<int64_t> a = s;
      a.push_back(mode);
      b->Args(a);
    }
}

void model_step(benchmark::State& st, siam::models::ResNet& model, int64_t batch, int64_t size, bool autocast) {
  model.to(kDev);
  model.train();
  siam::manual_seed(0);
  Tensor x = siam::randn({batch, 3, size, size}, siam::TensorOptions(kDev));
  Tensor gy;
  auto step = [&] {
    model.zero_grad();
    siam::AutocastGuard guard(siam::DType::bf16, autocast);
    Tensor y = model(x);
    if (!gy.defined()) gy = siam::randn(y.shape(), siam::TensorOptions(kDev));
    y.backward(gy);
  };
  try {
    step();  // warm-up: cuDNN algorithm searches, allocator pools
    kc::dense_synchronize(0);
  } catch (const siam::Error& e) {
    st.SkipWithError(e.what());
    return;
  }
  siam::cuda::reset_peak_device_stats(0);
  for (auto _ : st) {
    step();
    kc::dense_synchronize(0);
  }
  st.SetItemsProcessed(st.iterations() * batch);
  const double flops = 3.0 * static_cast<double>(model.forward_flops(size, size)) * static_cast<double>(batch);
  st.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = static_cast<double>(siam::cuda::device_alloc_stats(0).peak_allocated_bytes);
  st.SetLabel(std::string(autocast ? "bf16 autocast" : "f32") + " N" + std::to_string(batch) + " " +
              std::to_string(size) + "x" + std::to_string(size));
}

void BM_resnet18_step_cuda(benchmark::State& st) {
  if (!need_device(st)) return;
  auto model = siam::models::resnet18({.stem = siam::models::Stem::cifar, .num_classes = 10});
  model_step(st, *model, st.range(0), 32, st.range(1) != 0);
}

void BM_resnet50_step_cuda(benchmark::State& st) {
  if (!need_device(st)) return;
  auto model = siam::models::resnet50({.num_classes = 1000});
  model_step(st, *model, st.range(0), 224, st.range(1) != 0);
}

// The emulated smoke run's registrations (bench/smoke.h): GEMMs of 256, one small convolution per mode, the two
// model steps at batch 2 (ResNet-18 at 32 x 32) and 1 (ResNet-50 at 224 x 224).
const bool kSmokeRegistered = [] {
  if (!siam::bench::smoke_run()) return false;
  using siam::bench::smoke;
  smoke("BM_sgemm_cuda", BM_sgemm_cuda, {{256, 0}, {256, 1}}, false);
  smoke("BM_gemm_bf16_cuda", BM_gemm_bf16_cuda, {{256}}, false);
  smoke("BM_conv2d_cuda", BM_conv2d_cuda, {{2, 8, 16, 8, 3, 1, 1, 0}, {2, 8, 16, 8, 3, 2, 1, 2}}, false);
  smoke("BM_conv2d_bwd_cuda", BM_conv2d_bwd_cuda, {{2, 8, 16, 8, 3, 1, 1, 0}, {2, 8, 16, 8, 3, 2, 1, 2}}, false);
  smoke("BM_resnet18_step_cuda", BM_resnet18_step_cuda, {{2, 0}, {2, 1}}, false);
  smoke("BM_resnet50_step_cuda", BM_resnet50_step_cuda, {{1, 0}}, false);
  return true;
}();

}  // namespace

BENCHMARK(BM_sgemm_cuda)->Args({4096, 0})->Args({4096, 1})->Iterations(20)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gemm_bf16_cuda)->Arg(4096)->Arg(8192)->Iterations(20)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_conv2d_cuda)->Apply(resnet50_shapes)->Iterations(20)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_conv2d_bwd_cuda)->Apply(resnet50_shapes)->Iterations(10)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_resnet18_step_cuda)->Args({256, 0})->Args({256, 1})->Iterations(20)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_resnet50_step_cuda)->Args({64, 0})->Args({64, 1})->Iterations(10)->UseRealTime()->Unit(benchmark::kMillisecond);

#endif  // SIAM_WITH_CUDA

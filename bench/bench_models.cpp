// Whole-model training-step benchmarks: one forward + backward of a ResNet encoder (no optimizer step),
// loss = sum(features * r) so every parameter gets a gradient, BN in training mode.
//   BM_resnet18_cifar_fwdbwd_cpu  ResNet-18, CIFAR stem, 1 input channel, 28x28. Args: width, batch.
//   BM_resnet50_fwdbwd_cpu        ResNet-50, ImageNet stem, 3 channels. Args: batch, image size.
// Counters: items_per_second = images/s; flops = 3 x forward FLOPs (forward, and a backward of twice the
// forward's multiply-adds: input and weight gradients; conv and linear only, 2 per multiply-add) as a rate;
// bytes_peak = the process's peak resident set (getrusage ru_maxrss) after the benchmark, an upper bound on
// what the step needs (it includes whatever ran before in the same process: run one filter at a time).
// Run with OMP_NUM_THREADS set to the thread count being compared; bench/compare/torch_resnet.py times the
// same models in PyTorch (docs/PERF.md).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "models/resnet.h"

namespace {

using siam::Tensor;

void run(benchmark::State& st, siam::models::ResNet& model, int64_t batch, int64_t in_ch, int64_t size) {
  model.train();
  siam::manual_seed(0);
  Tensor x = siam::randn({batch, in_ch, size, size});
  Tensor r = siam::randn({batch, model.feature_dim()});
  for (auto _ : st) {
    model.zero_grad();
    Tensor loss = siam::sum(siam::mul(model(x), r));
    loss.backward();
    benchmark::DoNotOptimize(loss.raw_data());
  }
  st.SetItemsProcessed(st.iterations() * batch);
  const double flops = 3.0 * static_cast<double>(model.forward_flops(size, size)) * static_cast<double>(batch);
  st.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  st.counters["bytes_peak"] = 1024.0 * static_cast<double>(ru.ru_maxrss);
}

void BM_resnet18_cifar_fwdbwd_cpu(benchmark::State& st) {
  const int64_t width = st.range(0), batch = st.range(1);
  auto model = siam::models::resnet18({.width = width, .stem = siam::models::Stem::cifar, .in_channels = 1});
  run(st, *model, batch, 1, 28);
  st.SetLabel("resnet18 cifar w" + std::to_string(width) + " 1x28x28 N" + std::to_string(batch));
}

void BM_resnet50_fwdbwd_cpu(benchmark::State& st) {
  const int64_t batch = st.range(0), size = st.range(1);
  auto model = siam::models::resnet50();
  run(st, *model, batch, 3, size);
  st.SetLabel("resnet50 imagenet 3x" + std::to_string(size) + "x" + std::to_string(size) + " N" +
              std::to_string(batch));
}

}  // namespace

BENCHMARK(BM_resnet18_cifar_fwdbwd_cpu)
    ->Args({16, 256})
    ->Args({64, 256})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK(BM_resnet50_fwdbwd_cpu)->Args({8, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

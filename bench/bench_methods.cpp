// One training step of a method, compute only (views already in memory): forward of both views through
// encoder and heads, the method's loss, backward, the optimizer step and the method's after-step work (EMA,
// queue). The model and recipe are the Fashion-MNIST reference of issue #7: ResNet-18, CIFAR stem, width
// 16, 1 channel, 28x28, projector 128-512-128 (SimCLR), batch 256, SGD momentum 0.9, weight decay 5e-4.
//   BM_simclr_step_cpu/256   SimCLR (NT-Xent at temperature 0.2)
//   BM_method_step_cpu/<m>   every method of methods/ with its defaults (m: index in methods::method_names())
// items_per_second = source images per second (each with 2 views). bench/compare/torch_simclr_step.py runs the
// same SimCLR step in PyTorch; docs/PERF.md has the ratio.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include "engine/core/random.h"
#include "engine/optim/sgd.h"
#include "methods/method.h"

namespace {

using siam::Tensor;

void step_bench(benchmark::State& st, const std::string& name, int64_t batch) {
  siam::manual_seed(0);
  auto enc = std::make_shared<siam::models::ResNet>(siam::models::ResNetConfig{
      .depth = 18, .width = 16, .stem = siam::models::Stem::cifar, .in_channels = 1, .num_classes = 0});
  siam::methods::MethodOptions o = siam::methods::defaults_for(name);
  if (name == "wmse") o.whiten_size = std::min<int64_t>(o.whiten_size, batch);
  auto m = siam::methods::make_method(o, enc);
  std::vector<Tensor> params;
  for (auto& [n, p] : m->trainable_parameters()) params.push_back(p);
  siam::optim::SGD sgd(params, {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4});
  std::vector<Tensor> views = {siam::randn({batch, 1, 28, 28}), siam::randn({batch, 1, 28, 28})};
  int64_t step = 0;
  for (auto _ : st) {
    siam::methods::StepInfo info{.step = step, .total_steps = 1000};
    Tensor loss = m->loss(views, info).loss;
    sgd.zero_grad();
    loss.backward();
    m->before_optimizer_step(info);
    sgd.step();
    m->after_optimizer_step(info);
    benchmark::DoNotOptimize(loss.raw_data());
    ++step;
  }
  st.SetItemsProcessed(st.iterations() * batch);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  st.counters["bytes_peak"] = 1024.0 * static_cast<double>(ru.ru_maxrss);
  st.SetLabel(name + " resnet18 cifar w16 1x28x28 2 views N" + std::to_string(batch));
}

void BM_simclr_step_cpu(benchmark::State& st) { step_bench(st, "simclr", st.range(0)); }

void BM_method_step_cpu(benchmark::State& st) {
  step_bench(st, siam::methods::method_names().at(static_cast<size_t>(st.range(0))), 256);
}

}  // namespace

BENCHMARK(BM_simclr_step_cpu)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_method_step_cpu)->DenseRange(0, 7)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

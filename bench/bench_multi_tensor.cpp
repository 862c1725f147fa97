// Multi-tensor EMA and optimizer steps (kernels/cpu/multi_tensor.h) against per-tensor loops of engine ops,
// over the parameter list of a torchvision ResNet-18 (11.18 M parameters in 60 tensors) and ResNet-50
// (23.51 M in 159 tensors), models/resnet.h, ImageNet stem, no fc.
//
//   BM_ema_fused/depth       optim::ema_update(target, online, 0.996): one pass over all tensors
//   BM_ema_pertensor/depth   for each pair: target.mul_(m).add_(online, 1 - m) (engine ops, temporaries)
//   BM_sgd_fused/depth       optim::SGD (momentum 0.9, weight decay 1e-4, buffers already present) step()
//   BM_sgd_pertensor/depth   per tensor: d = g + wd p; buf = m buf + d; p += -lr buf (engine ops, as SGD was)
// Counters: bytes = the fewest bytes the update must move per step, as a rate (EMA: read target and online,
// write target: 12 bytes per f32 parameter; SGD: read p, g, buf, write p, buf: 20 bytes); bytes_peak = the
// allocator's high-water mark during a step above what was live before (the temporaries). Compare the rate
// with BM_memcpy_ref (bench_core.cpp), the machine's copy bandwidth.
// Run: OMP_NUM_THREADS=2 build/bench/siam_bench --benchmark_filter='BM_(ema|sgd)_|BM_memcpy_ref'
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <vector>

#include "engine/core/storage.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/ema.h"
#include "engine/optim/sgd.h"
#include "engine/tensor.h"
#include "models/resnet.h"

namespace {

using siam::Tensor;
constexpr double kMinTime = 0.2;
constexpr double kMomentum = 0.996;

// The parameters of a ResNet of the given depth (built once per depth and kept for the whole run).
const std::vector<Tensor>& resnet_params(int depth) {
  static std::map<int, std::vector<Tensor>> cache;
  auto it = cache.find(depth);
  if (it == cache.end()) {
    siam::models::ResNetConfig cfg;
    cfg.depth = depth;
    siam::models::ResNet net(cfg);
    std::vector<Tensor> ps;
    for (const Tensor& p : net.parameters()) ps.push_back(p.detach());
    it = cache.emplace(depth, std::move(ps)).first;
  }
  return it->second;
}

std::vector<Tensor> clones(const std::vector<Tensor>& ts, double scale) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(siam::mul(t, scale));
  return out;
}

int64_t total_numel(const std::vector<Tensor>& ts) {
  int64_t n = 0;
  for (const Tensor& t : ts) n += t.numel();
  return n;
}

// Runs step() each iteration; counters as described above.
template <class F>
void run_step(benchmark::State& st, double bytes_per_step, F step) {
  size_t peak = 0;
  for (auto _ : st) {
    const size_t base = siam::cpu_alloc_stats().allocated_bytes;
    siam::cpu_reset_peak_stats();
    step();
    benchmark::ClobberMemory();
    peak = std::max(peak, siam::cpu_alloc_stats().peak_allocated_bytes - base);
  }
  st.counters["bytes"] = benchmark::Counter(bytes_per_step, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = double(peak);
}

void BM_ema_fused(benchmark::State& st) {
  const std::vector<Tensor>& online = resnet_params(int(st.range(0)));
  std::vector<Tensor> target = clones(online, 0.5);
  const int64_t n = total_numel(online);
  run_step(st, 12.0 * double(n), [&] { siam::optim::ema_update(target, online, kMomentum); });
  st.counters["params"] = double(n);
}
void BM_ema_pertensor(benchmark::State& st) {
  const std::vector<Tensor>& online = resnet_params(int(st.range(0)));
  std::vector<Tensor> target = clones(online, 0.5);
  const int64_t n = total_numel(online);
  run_step(st, 12.0 * double(n), [&] {
    siam::NoGradGuard ng;
    for (size_t i = 0; i < target.size(); ++i) target[i].mul_(kMomentum).add_(online[i], 1.0 - kMomentum);
  });
  st.counters["params"] = double(n);
}

// Leaf copies of the parameters with gradients set, for the optimizer benchmarks.
struct SgdSetup {
  std::vector<Tensor> params, grads, bufs;
  int64_t numel = 0;
  explicit SgdSetup(int depth) {
    for (const Tensor& p : resnet_params(depth)) {
      params.push_back(p.clone().set_requires_grad(true));
      grads.push_back(siam::mul(p, 0.01));
      bufs.push_back(siam::mul(p, 0.001));
      params.back().set_grad(grads.back());
      numel += p.numel();
    }
  }
};

constexpr double kLr = 0.1, kWd = 1e-4, kSgdMomentum = 0.9;

void BM_sgd_fused(benchmark::State& st) {
  SgdSetup s(int(st.range(0)));
  siam::optim::SGD opt(s.params, {.lr = kLr, .momentum = kSgdMomentum, .weight_decay = kWd});
  opt.step();  // creates the momentum buffers: every timed step reads and writes them
  run_step(st, 20.0 * double(s.numel), [&] { opt.step(); });
  st.counters["params"] = double(s.numel);
}
void BM_sgd_pertensor(benchmark::State& st) {
  SgdSetup s(int(st.range(0)));
  run_step(st, 20.0 * double(s.numel), [&] {
    siam::NoGradGuard ng;
    for (size_t i = 0; i < s.params.size(); ++i) {
      Tensor d = siam::add(s.grads[i], siam::mul(s.params[i], kWd));
      s.bufs[i].mul_(kSgdMomentum).add_(d);
      s.params[i].add_(s.bufs[i], -kLr);
    }
  });
  st.counters["params"] = double(s.numel);
}

void resnet_args(benchmark::internal::Benchmark* b) {
  b->Arg(18)->Arg(50)->ArgNames({"depth"})->MinTime(kMinTime)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_ema_fused)->Apply(resnet_args);
BENCHMARK(BM_ema_pertensor)->Apply(resnet_args);
BENCHMARK(BM_sgd_fused)->Apply(resnet_args);
BENCHMARK(BM_sgd_pertensor)->Apply(resnet_args);

}  // namespace

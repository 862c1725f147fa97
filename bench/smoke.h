// The emulated smoke run of the CUDA benchmarks (ctest bench.cuda_emu_smoke, tests/bench_cuda_emu_smoke.sh):
// with SIAM_BENCH_SMOKE set, each bench_cuda*.cpp registers its benchmarks a second time as "smoke/<name>"
// with arguments small enough for the CUDA emulator (kernels/emu), one iteration each, so that every CUDA
// benchmark's code runs on every machine before a GPU session spends its minutes on it. Unset (every real
// run): nothing more is registered and nothing changes.
#pragma once
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace siam::bench {

inline bool smoke_run() {
  static const bool on = [] {
    const char* s = std::getenv("SIAM_BENCH_SMOKE");
    return s != nullptr && *s != '\0' && std::string(s) != "0";
  }();
  return on;
}

// Registers fn as "smoke/<name>" with each argument list, one iteration; manual: the benchmark times itself
// (SetIterationTime), as its real registration declares with UseManualTime.
using BenchFn = void (*)(benchmark::State&);
inline void smoke(const std::string& name, BenchFn fn, const std::vector<std::vector<int64_t>>& args, bool manual) {
  benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(("smoke/" + name).c_str(), fn);
  for (const auto& a : args) b->Args(a);
  b->Iterations(1);
  if (manual) b->UseManualTime();
}
// The same for several benchmarks with the same arguments.
inline void smoke(const std::vector<std::pair<const char*, BenchFn>>& fns,
                  const std::vector<std::vector<int64_t>>& args, bool manual) {
  for (const auto& [name, fn] : fns) smoke(name, fn, args, manual);
}

}  // namespace siam::bench

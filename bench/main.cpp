// Benchmark entry point: the same BLAS kernels as the siam program (engine/core/blas.h), then Google Benchmark.
#include <benchmark/benchmark.h>

#include "engine/core/blas.h"

int main(int argc, char** argv) {
  siam::ensure_fast_blas(argv);
  benchmark::AddCustomContext("blas", siam::blas_info());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

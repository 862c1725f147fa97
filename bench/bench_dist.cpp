// BM_allreduce_mpi/<bytes>/<raw>: in-place all-reduce (sum) of an f32 buffer of <bytes> (4 KB to 256 MB) over the
// ranks of mpirun. raw = 0: siam's Communicator::all_reduce (MPI_Iallreduce polled against the deadline);
// raw = 1: a plain blocking MPI_Allreduce on a duplicate of the same communicator, the reference for the polling
// overhead. Counters: bytes (the buffer) as a rate = algorithm bandwidth (GB/s); busbw = algbw * 2 (W - 1) / W,
// the bytes each rank's link moves in a ring all-reduce (NCCL-tests' convention); bytes_peak = the buffer.
// Only meaningful under mpirun: run
//   mpirun -np 2 build/bench/siam_bench --benchmark_filter=allreduce
// (each rank prints the same table; the iteration counts are fixed per size so every rank calls the same number
// of collectives). Without mpirun the benchmark reports an error row and does nothing.
#if SIAM_WITH_MPI
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <algorithm>
#include <cstdlib>

#include "engine/dist/dist.h"

namespace {

using siam::Tensor;
namespace dist = siam::dist;

dist::Communicator& bench_world() {
  static const bool once = [] {
    dist::init(nullptr, nullptr);
    std::atexit([] { dist::finalize(); });
    return true;
  }();
  (void)once;
  return dist::world();
}

void BM_allreduce_mpi(benchmark::State& st) {
  auto& c = bench_world();
  if (c.world_size() < 2) {
    st.SkipWithError("needs several ranks: mpirun -np 2 siam_bench --benchmark_filter=allreduce");
    return;
  }
  const int64_t bytes = st.range(0), n = bytes / 4;
  const bool raw = st.range(1) != 0;
  Tensor t = siam::ones({n});
  static MPI_Comm raw_comm = [] {
    MPI_Comm d;
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    return d;
  }();
  c.barrier();
  for (auto _ : st) {
    if (raw)
      MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, raw_comm);
    else
      c.all_reduce(t, dist::ReduceOp::sum);
    benchmark::DoNotOptimize(t.raw_data());
  }
  const double W = c.world_size();
  st.counters["bytes"] = benchmark::Counter(double(bytes), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["busbw"] =
      benchmark::Counter(double(bytes) * 2 * (W - 1) / W, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = double(bytes);
  st.counters["ranks"] = W;
}

}  // namespace

// Fixed iteration counts (Google Benchmark would otherwise pick them per rank, and the ranks would disagree on
// the number of collectives): about 64 MB per rank and size, at least 2 and at most 1000 calls. A separate
// registration per size, since Iterations() applies to a whole family.
#define SIAM_ALLREDUCE_SIZE(bytes)                                              \
  BENCHMARK(BM_allreduce_mpi)                                                   \
      ->ArgNames({"bytes", "raw"})                                              \
      ->Args({bytes, 0})                                                        \
      ->Args({bytes, 1})                                                        \
      ->Iterations(std::clamp<int64_t>((int64_t(64) << 20) / (bytes), 2, 1000)) \
      ->UseRealTime()                                                           \
      ->Unit(benchmark::kMicrosecond)
SIAM_ALLREDUCE_SIZE(4 << 10);
SIAM_ALLREDUCE_SIZE(64 << 10);
SIAM_ALLREDUCE_SIZE(1 << 20);
SIAM_ALLREDUCE_SIZE(16 << 20);
SIAM_ALLREDUCE_SIZE(256 << 20);
#endif

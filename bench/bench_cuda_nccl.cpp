// BM_allreduce_nccl/bytes:<bytes>: in-place all-reduce (sum) of an f32 CUDA buffer of <bytes> (4 KB to 256 MB)
// through siam's NCCL communicator (Communicator::all_reduce: the event that orders the comm stream after the
// caller's stream, the NCCL call, the polled completion and the deadline), wall time per call (every call is
// blocking for the host).
// World: under mpirun with one GPU per rank, dist::world() (backend "nccl+mpi"); otherwise a world of one rank
// on cuda:0, which is what the one-GPU check machine measures: there NCCL moves no data (an in-place
// all-reduce over one rank), so the time is the per-call overhead (event, launch, polling) and busbw is 0.
// Counters, as BM_allreduce_mpi (bench/bench_dist.cpp) and NCCL-tests: bytes = the buffer, as a rate (the
// algorithm bandwidth, GB/s); busbw = algbw * 2 (W - 1) / W, the bytes each rank's link moves in a ring
// all-reduce (GB/s); bytes_peak = the buffer; ranks = W.
// Compiled only into CUDA builds (bench/CMakeLists.txt); without NCCL in the build, or without a device, the
// benchmark reports an error row and runs nothing.
//   build/bench/siam_bench --benchmark_filter=allreduce_nccl
//   mpirun -np 2 build/bench/siam_bench --benchmark_filter=allreduce_nccl   (a machine with 2 GPUs)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "engine/dist/dist.h"
#include "engine/tensor.h"

#if SIAM_WITH_NCCL
#include "engine/dist/nccl_communicator.h"
#include "kernels/cuda/nccl.h"
#include "kernels/cuda/stream.h"
#endif

namespace {

using siam::Tensor;
namespace dist = siam::dist;

#if SIAM_WITH_NCCL
// The NCCL world: mpirun's, when it routes CUDA tensors to NCCL; else one rank on cuda:0. Never destroyed
// (an NCCL communicator torn down by a static destructor can outlive the CUDA runtime).
dist::Communicator* nccl_world() {
  static dist::Communicator* c = []() -> dist::Communicator* {
    if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
      dist::init(nullptr, nullptr);
      std::atexit([] { dist::finalize(); });
      if (dist::world().backend() == "nccl+mpi") return &dist::world();
    }
    return dist::make_nccl(1, 0, 0, 0, siam::cuda::nccl_unique_id(), "bench", dist::default_timeout_s()).release();
  }();
  return c;
}
#endif

void BM_allreduce_nccl(benchmark::State& st) {
#if !SIAM_WITH_NCCL
  st.SkipWithError("built without NCCL (nccl.h or libnccl not found by CMake)");
#else
  if (!siam::cuda_available()) {
    st.SkipWithError("no CUDA device on this machine");
    return;
  }
  dist::Communicator& c = *nccl_world();
  const int64_t bytes = st.range(0), n = bytes / 4;
  const siam::Device dev(siam::DeviceType::cuda, siam::cuda::current_device());
  Tensor t = siam::ones({n}, siam::TensorOptions(siam::DType::f32, dev));  // (n) f32
  c.all_reduce(t, dist::ReduceOp::sum);  // warm-up: NCCL connects lazily on the first collective
  c.barrier();
  for (auto _ : st) {
    c.all_reduce(t, dist::ReduceOp::sum);
    benchmark::DoNotOptimize(t.raw_data());
  }
  const double W = c.world_size();
  st.counters["bytes"] = benchmark::Counter(double(bytes), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["busbw"] =
      benchmark::Counter(double(bytes) * 2 * (W - 1) / W, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = double(bytes);
  st.counters["ranks"] = W;
#endif
}

}  // namespace

// Fixed iteration counts, as BM_allreduce_mpi (every rank must call the same number of collectives): about
// 64 MB per size, at least 2 and at most 1000 calls; one registration per size.
#define SIAM_ALLREDUCE_NCCL_SIZE(bytes)                                         \
  BENCHMARK(BM_allreduce_nccl)                                                  \
      ->ArgNames({"bytes"})                                                     \
      ->Arg(bytes)                                                              \
      ->Iterations(std::clamp<int64_t>((int64_t(64) << 20) / (bytes), 2, 1000)) \
      ->UseRealTime()                                                           \
      ->Unit(benchmark::kMicrosecond)
SIAM_ALLREDUCE_NCCL_SIZE(4 << 10);
SIAM_ALLREDUCE_NCCL_SIZE(64 << 10);
SIAM_ALLREDUCE_NCCL_SIZE(1 << 20);
SIAM_ALLREDUCE_NCCL_SIZE(16 << 20);
SIAM_ALLREDUCE_NCCL_SIZE(256 << 20);

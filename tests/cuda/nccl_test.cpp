// The NCCL communicator (engine/dist/nccl_communicator.h, kernels/cuda/nccl.cu) in one process: a world of
// size 1 (ncclCommInitRankConfig with one rank) on cuda:0. Every collective on a CUDA tensor must equal the
// CPU computation, which for one rank is the single-process backend's (the identity, or a copy); the
// collectives must be ordered after the work queued on the caller's stream, also when that stream is not
// the default one; and misuse is a siam::Error naming the collective. Label cuda: skipped with a reason
// without a device or without NCCL in the build.
// Not covered here: two ranks. The GPU check machine has one GPU and NCCL cannot put two ranks on one device;
// the cross-rank arithmetic is that of the MPI tests (tests/dist), and a 2-GPU run is
// `mpirun -np 2 build/tests/siam_tests_dist` on a machine with two GPUs (world() is then "nccl+mpi").
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "engine/core/random.h"
#include "engine/dist/dist.h"
#include "engine/ops/elementwise.h"
#include "engine/tensor.h"
#include "tests/cuda/cuda_test.h"

#if SIAM_WITH_NCCL
#include "engine/dist/nccl_communicator.h"
#include "kernels/cuda/nccl.h"
#include "kernels/cuda/stream.h"
#endif

namespace siam {
namespace {

using ::testing::HasSubstr;

#if !SIAM_WITH_NCCL
TEST(Nccl, SingleRankCollectives) {
  GTEST_SKIP() << "built without NCCL (a CPU-only build, or nccl.h/libnccl not found)";
}
#else

// One NCCL world of size 1 for the whole suite (creating one takes about a second).
class Nccl : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { comm_.reset(); }
  void SetUp() override {
    if (!cuda_available()) return;
    if (!comm_) comm_ = dist::make_nccl(1, 0, 0, 0, cuda::nccl_unique_id(), "test", 120.0);
  }
  dist::Communicator& comm() { return *comm_; }
  static std::unique_ptr<dist::Communicator> comm_;
};
std::unique_ptr<dist::Communicator> Nccl::comm_;

std::vector<float> host(const Tensor& t) { return t.to(kCPU).to_vector<float>(); }

TEST_F(Nccl, WorldOfOne) {
  SIAM_REQUIRE_CUDA();
  EXPECT_EQ(comm().backend(), "nccl");
  EXPECT_EQ(comm().rank(), 0);
  EXPECT_EQ(comm().world_size(), 1);
  EXPECT_GE(cuda::nccl_version(), 21800);  // ncclCommSplit and nonblocking communicators
}

TEST_F(Nccl, AllReduceMatchesTheCpu) {
  SIAM_REQUIRE_CUDA();
  Generator gen(3);
  Tensor x = randn({37, 129}, gen);  // (37, 129) f32, an odd size
  for (dist::ReduceOp op : {dist::ReduceOp::sum, dist::ReduceOp::avg, dist::ReduceOp::max}) {
    Tensor ref = x.clone();
    dist::world().all_reduce(ref, op);  // the CPU computation (single-process backend)
    Tensor d = x.to(kDev);
    comm().all_reduce(d, op);
    EXPECT_TRUE(d.is_cuda());
    EXPECT_EQ(host(d), ref.to_vector<float>()) << dist::reduce_op_name(op);
  }
  // f64 and i64 (sum, max)
  Tensor xd = randn({1000}, gen).to(DType::f64);
  Tensor dd = xd.to(kDev);
  comm().all_reduce(dd, dist::ReduceOp::avg);
  EXPECT_EQ(dd.to(kCPU).to_vector<double>(), xd.to_vector<double>());
  Tensor xi = from_vector_i64({5, -7, 1LL << 40}, {3});
  Tensor di = xi.to(kDev);
  comm().all_reduce(di, dist::ReduceOp::max);
  EXPECT_EQ(di.to(kCPU).to_vector<int64_t>(), xi.to_vector<int64_t>());
}

TEST_F(Nccl, AllGatherAndReduceScatterMatchTheCpu) {
  SIAM_REQUIRE_CUDA();
  Generator gen(4);
  Tensor x = randn({6, 5, 3}, gen);
  Tensor g = comm().all_gather(x.to(kDev));  // (W 6, 5, 3) = (6, 5, 3)
  EXPECT_EQ(g.shape(), (Shape{6, 5, 3}));
  EXPECT_TRUE(g.is_cuda());
  EXPECT_EQ(host(g), dist::world().all_gather(x).to_vector<float>());
  // a non-contiguous input is gathered as its contiguous copy
  Tensor xt = x.to(kDev).transpose(0, 1);  // (5, 6, 3), non-contiguous
  EXPECT_EQ(host(comm().all_gather(xt)), xt.to(kCPU).contiguous().to_vector<float>());

  Tensor r = comm().reduce_scatter(x.to(kDev), dist::ReduceOp::sum);  // (6 / W, 5, 3)
  EXPECT_EQ(r.shape(), (Shape{6, 5, 3}));
  EXPECT_EQ(host(r), dist::world().reduce_scatter(x, dist::ReduceOp::sum).to_vector<float>());
  Tensor ra = comm().reduce_scatter(x.to(kDev), dist::ReduceOp::avg);
  EXPECT_EQ(host(ra), x.to_vector<float>());
  // bf16 moves bitwise
  Tensor b = x.to(DType::bf16);
  EXPECT_EQ(comm().all_gather(b.to(kDev)).to(kCPU).to(DType::f32).to_vector<float>(),
            b.to(DType::f32).to_vector<float>());
}

TEST_F(Nccl, BroadcastAndBarrier) {
  SIAM_REQUIRE_CUDA();
  Generator gen(5);
  Tensor x = randn({4, 33}, gen);
  Tensor d = x.to(kDev);
  comm().broadcast(d, 0);
  EXPECT_EQ(host(d), x.to_vector<float>());
  comm().barrier();
  comm().barrier();
  try {
    comm().broadcast(d, 1);
    FAIL() << "expected siam::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("broadcast"));
    EXPECT_THAT(e.what(), HasSubstr("root 1"));
  }
}

// The collective waits for the kernels queued before it on the caller's stream, and work queued after it
// sees its result; here with a non-default stream current (the copy stream, non-blocking), where nothing but
// the events orders it with the communication stream. 64 MiB, so a missing wait would read unwritten memory.
TEST_F(Nccl, OrderedWithTheCallersStream) {
  SIAM_REQUIRE_CUDA();
  Generator gen(6);
  const int64_t n = int64_t(1) << 24;
  Tensor x = randn({n}, gen);
  const std::vector<float> xv = x.to_vector<float>();
  {
    cuda::StreamGuard guard(cuda::copy_stream(0), 0);
    Tensor d = x.to(kDev);
    Tensor y = mul(d, 3.0);                     // on the copy stream
    Tensor g = comm().all_gather(y);            // on the comm stream, after y
    Tensor z = add(g, 1.0);                     // on the copy stream, after the gather
    comm().all_reduce(z, dist::ReduceOp::sum);  // in place, right after the add
    const std::vector<float> zv = host(z);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i)
      if (zv[static_cast<size_t>(i)] != xv[static_cast<size_t>(i)] * 3.0f + 1.0f) ++bad;
    EXPECT_EQ(bad, 0) << "elements that the collectives read or wrote out of order";
  }
  cuda::synchronize_stream(cuda::copy_stream(0));
}

TEST_F(Nccl, MisuseIsAnErrorNamingTheCollective) {
  SIAM_REQUIRE_CUDA();
  Tensor cpu = ones({4});
  try {
    comm().all_reduce(cpu, dist::ReduceOp::sum);
    FAIL() << "expected siam::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("all_reduce"));
    EXPECT_THAT(e.what(), HasSubstr("cuda:0"));
  }
  Tensor b = ones({4}).to(DType::bf16).to(kDev);
  EXPECT_THROW(comm().all_reduce(b, dist::ReduceOp::sum), Error);  // bf16 is moved, never reduced
  Tensor i = from_vector_i64({1, 2}, {2}).to(kDev);
  EXPECT_THROW(comm().all_reduce(i, dist::ReduceOp::avg), Error);  // avg needs a floating dtype
  Tensor nc = ones({4, 4}).to(kDev).t();
  EXPECT_THROW(comm().all_reduce(nc, dist::ReduceOp::sum), Error);                     // in place needs contiguous
  EXPECT_THROW(comm().reduce_scatter(ones({}).to(kDev), dist::ReduceOp::sum), Error);  // no dim 0
}

// A duplicate is an independent communicator (ncclCommSplit, its own stream); both stay usable.
TEST_F(Nccl, DuplicateIsIndependent) {
  SIAM_REQUIRE_CUDA();
  auto dup = comm().duplicate("test.dup");
  EXPECT_EQ(dup->name(), "test.dup");
  EXPECT_EQ(dup->backend(), "nccl");
  Tensor x = randn({1000});
  Tensor d = x.to(kDev);
  dup->all_reduce(d, dist::ReduceOp::sum);
  comm().all_reduce(d, dist::ReduceOp::sum);
  EXPECT_EQ(host(d), x.to_vector<float>());
}

// A rank that never joins: creation polls against the deadline, aborts and throws (no hang). Rank 0 of a
// world of 2 whose rank 1 does not exist.
TEST_F(Nccl, CreationTimesOutWhenARankIsMissing) {
  SIAM_REQUIRE_CUDA();
  try {
    auto lonely = dist::make_nccl(2, 0, 0, 0, cuda::nccl_unique_id(), "lonely", 2.0);
    FAIL() << "expected siam::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("'lonely'"));
    EXPECT_THAT(e.what(), HasSubstr("timed out after 2 s"));
    EXPECT_THAT(e.what(), HasSubstr("ncclCommAbort"));
  }
  // the suite's own communicator is untouched
  Tensor d = ones({8}).to(kDev);
  comm().all_reduce(d, dist::ReduceOp::sum);
  EXPECT_EQ(host(d), std::vector<float>(8, 1.0f));
}

#endif  // SIAM_WITH_NCCL

}  // namespace
}  // namespace siam

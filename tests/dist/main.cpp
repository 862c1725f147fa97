// Entry point of the distributed tests (run as `mpirun -np 2 siam_tests_dist`, ctest label dist): every rank
// runs every test in the same order, since the tests issue collectives. Rank 0 prints GoogleTest's usual
// output; the other ranks print only their failures, prefixed with the rank. The exit status is the same on
// every rank: failure if any rank failed.
#include <gtest/gtest.h>

#include <cstdio>

#include "engine/core/blas.h"
#include "engine/dist/dist.h"

namespace {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                 r.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  siam::ensure_fast_blas(argv);
  siam::dist::init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  auto& comm = siam::dist::world();
  if (comm.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(comm.rank()));
  }
  if (comm.world_size() < 2)
    std::fprintf(stderr,
                 "siam_tests_dist: running on 1 rank (backend %s); run it as `mpirun -np 2 %s` to test "
                 "the collectives across ranks\n",
                 comm.backend().c_str(), argv[0]);
  int rc = RUN_ALL_TESTS();
  siam::Tensor failed = siam::from_vector_i64({rc != 0 ? 1 : 0}, {1});
  comm.all_reduce(failed, siam::dist::ReduceOp::max);
  rc = failed.to_vector<int64_t>()[0] != 0 ? 1 : 0;
  siam::dist::finalize();
  return rc;
}

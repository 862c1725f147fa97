// SyncBatchNorm and the autograd collectives with two ranks as two threads (tests/unit/thread_pair.h) on the CPU:
// the in-process harness that tests/cuda/dist_ops_cuda_test.cpp runs on a GPU, checked here on every machine. The MPI
// form of the same comparison is tests/dist/sync_batchnorm_test.cpp.
#include <gtest/gtest.h>

#include "tests/unit/pair_checks.h"

namespace siam::test {
namespace {

TEST(SyncBatchNormPair, TwoThreadRanksMatchBatchNormOnTheWholeBatch) {
  check_sync_bn_pair(kCPU, DType::f64, {7, 5, 3, 4}, 3, 1e-12, 1);
  check_sync_bn_pair(kCPU, DType::f64, {9, 6}, 4, 1e-12, 2);
  check_sync_bn_pair(kCPU, DType::f32, {6, 4, 10}, 3, 2e-5, 3);
}

TEST(ThreadPair, AutogradCollectivesGiveTheGatheredRowsTheSumsAndTheirGradients) {
  check_collectives_pair(kCPU, DType::f64, 1e-12);
  check_collectives_pair(kCPU, DType::f32, 1e-6);
}

TEST(ThreadPair, AFailingRankStopsItsPartnerAndItsErrorIsReported) {
  try {
    run_pair([](dist::Communicator& comm, int rank) {
      if (rank == 1) SIAM_FAIL("rank 1 broke");
      Tensor t = ones({2});
      comm.all_reduce(t, dist::ReduceOp::sum);  // rank 1 never comes
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 broke"), std::string::npos) << e.what();
  }
}

TEST(ThreadPair, APartnerThatNeverArrivesTimesOut) {
  auto hub = std::make_shared<PairHub>(0.2);
  PairCommunicator comm(hub, 0);
  Tensor t = ones({3});
  try {
    comm.all_reduce(t, dist::ReduceOp::sum);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0 waited"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace siam::test

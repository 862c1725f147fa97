// The distributed ops and the factories on CUDA against the CPU (label cuda): SyncBatchNorm
// (kernels/cuda/sync_batchnorm.h) with one rank through dist::world() against batch_norm, and with two ranks as two
// threads on one GPU (tests/unit/thread_pair.h: NCCL cannot put two ranks on one device) against batch_norm on
// the whole batch on the CPU; the autograd collectives (all_gather_rows, all_reduce_sum) on two thread ranks;
// eye and arange made on the device. The harness itself runs on the CPU in every build (SyncBatchNormPair.*,
// ThreadPair.*, tests/unit/thread_pair_test.cpp).
#include <gtest/gtest.h>

#include "engine/core/random.h"
#include "engine/dist/dist.h"
#include "engine/nn/sync_batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/norm.h"
#include "engine/ops/reduce.h"
#include "tests/cuda/cuda_test.h"
#include "tests/unit/pair_checks.h"

namespace siam::test {
namespace {

TEST(CudaSyncBatchNorm, OneRankMatchesCpuBatchNorm) {
  SIAM_REQUIRE_CUDA();
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
    for (const Shape& xs : {Shape{8, 16, 5, 5}, Shape{33, 12}, Shape{4, 6, 10}, Shape{64, 64, 16, 16}}) {
      const std::string what = shape_str(xs) + " " + dtype_name(dt);
      const int64_t C = xs[1];
      manual_seed(5);
      Tensor x = uniform(xs, -2.0, 3.0).to(dt), R = uniform(xs, -1.0, 1.0).to(dt);
      Tensor w = uniform({C}, 0.5, 1.5).to(dt), b = uniform({C}, -0.5, 0.5).to(dt);
      Tensor rm_c = zeros({C}).to(dt), rv_c = ones({C}).to(dt);
      Tensor xc = x.clone().set_requires_grad(), wc = w.clone().set_requires_grad(), bc = b.clone().set_requires_grad();
      Tensor yc = batch_norm(xc, rm_c, rv_c, wc, bc, true, 0.1, 1e-5);
      sum(yc * R).backward();
      Tensor rm_d = zeros({C}).to(dt).to(kDev), rv_d = ones({C}).to(dt).to(kDev);
      Tensor xd = x.to(kDev).set_requires_grad(), wd = w.to(kDev).set_requires_grad();
      Tensor bd = b.to(kDev).set_requires_grad();
      Tensor yd = sync_batch_norm(xd, rm_d, rv_d, wd, bd, 0.1, 1e-5, dist::world());
      ASSERT_TRUE(yd.is_cuda()) << what;
      sum(yd * R.to(kDev)).backward();
      EXPECT_LE(rel_error(yd.detach().to(kCPU), yc.detach()), tol) << "forward " << what;
      EXPECT_LE(rel_error(xd.grad().to(kCPU), xc.grad()), tol) << "input grad " << what;
      EXPECT_LE(rel_error(wd.grad().to(kCPU), wc.grad()), tol) << "weight grad " << what;
      EXPECT_LE(rel_error(bd.grad().to(kCPU), bc.grad()), tol) << "bias grad " << what;
      EXPECT_LE(rel_error(rm_d.to(kCPU), rm_c), tol) << "running_mean " << what;
      EXPECT_LE(rel_error(rv_d.to(kCPU), rv_c), tol) << "running_var " << what;
    }
  }
}

TEST(CudaSyncBatchNorm, TwoThreadRanksOnOneGpuMatchCpuBatchNormOnTheWholeBatch) {
  SIAM_REQUIRE_CUDA();
  check_sync_bn_pair(kDev, DType::f64, {7, 5, 3, 4}, 3, 1e-12, 1);
  check_sync_bn_pair(kDev, DType::f64, {9, 6}, 4, 1e-12, 2);
  check_sync_bn_pair(kDev, DType::f32, {6, 4, 10}, 3, 2e-5, 3);
  check_sync_bn_pair(kDev, DType::f32, {32, 16, 8, 8}, 16, 2e-5, 4);
}

TEST(CudaSyncBatchNorm, OneValuePerChannelInAllIsAClearError) {
  SIAM_REQUIRE_CUDA();
  Tensor x = ones({1, 3}).to(kDev);
  Tensor rm = full({3}, 0.5).to(kDev), rv = full({3}, 2.0).to(kDev);
  try {
    sync_batch_norm(x, rm, rv, Tensor(), Tensor(), 0.1, 1e-5, dist::world());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than one value per channel"), std::string::npos) << e.what();
  }
  // as on the CPU, the running statistics are left as they were (not 0/0 and 0 * inf)
  EXPECT_EQ(rm.to(kCPU).to_vector<double>(), std::vector<double>(3, 0.5));
  EXPECT_EQ(rv.to(kCPU).to_vector<double>(), std::vector<double>(3, 2.0));
}

TEST(CudaCollectives, AutogradCollectivesOverTwoThreadRanksOnOneGpu) {
  SIAM_REQUIRE_CUDA();
  check_collectives_pair(kDev, DType::f64, 1e-12);
  check_collectives_pair(kDev, DType::f32, 1e-6);
}

TEST(CudaFactories, EyeAndArangeMatchTheCpu) {
  SIAM_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor e = eye(5, 7, TensorOptions(dt, kDev));
    ASSERT_TRUE(e.is_cuda());
    EXPECT_EQ(e.to(kCPU).to_vector<double>(), eye(5, 7, TensorOptions(dt)).to_vector<double>());
    Tensor a = arange(-1.5, 2.0, 0.25, TensorOptions(dt, kDev));
    ASSERT_TRUE(a.is_cuda());
    EXPECT_EQ(a.to(kCPU).to_vector<double>(), arange(-1.5, 2.0, 0.25, TensorOptions(dt)).to_vector<double>());
  }
}

}  // namespace
}  // namespace siam::test

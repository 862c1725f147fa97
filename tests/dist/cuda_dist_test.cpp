// The distributed paths with CUDA tensors, on 2 ranks (label dist). Each rank uses the device at its local rank,
// as `siam train` does. Without a device every rank skips them; on the CUDA emulator (siam_tests_dist_emu, ctest
// dist.emu_mpirun_np2) they run with NCCL emulated over MPI, so the routed world (CUDA tensors to NCCL), DDP's
// CUDA buckets and SyncBatchNorm on the device are exercised on every machine.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "engine/core/device.h"
#include "engine/dist/backends.h"
#include "engine/nn/batchnorm.h"
#include "methods/method.h"
#include "tests/cuda/cuda_test.h"
#include "tests/dist/ddp_steps.h"
#include "tests/dist/dist_util.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

Device my_device(const dist::Communicator& w) { return Device("cuda:" + std::to_string(w.local_rank())); }

// The world routes CUDA tensors to NCCL ("nccl+mpi", engine/dist/nccl_communicator.h) in a build with NCCL when
// every rank has a device at its local rank and SIAM_DIST_NCCL is not 0; otherwise it is MPI alone ("mpi"),
// which stages CUDA tensors through host memory.
TEST(DistCuda, WorldIsNcclPlusMpiInAnNcclBuild) {
  SIAM_REQUIRE_CUDA();
  dist::Communicator& world = dist::world();
  Tensor with_device = from_vector_i64({world.local_rank() < cuda_device_count() ? 1 : 0}, {1});
  world.all_reduce(with_device, dist::ReduceOp::sum);
  const bool every_rank = with_device.to_vector<int64_t>()[0] == world.world_size();
  const char* env = std::getenv("SIAM_DIST_NCCL");
  const bool disabled = env != nullptr && std::string(env) == "0";
#if SIAM_WITH_NCCL
  const bool nccl_build = true;
#else
  const bool nccl_build = false;
#endif
  EXPECT_EQ(world.backend(), nccl_build && every_rank && !disabled ? "nccl+mpi" : "mpi")
      << "NCCL build " << nccl_build << ", a device at every rank's local rank " << every_rank << ", SIAM_DIST_NCCL=0 "
      << disabled;
  // world() is MPI for CPU tensors either way: a CPU collective still works
  Tensor t = full({2}, 1.0);
  world.all_reduce(t, dist::ReduceOp::sum);
  EXPECT_EQ(t.to_vector<double>()[1], world.world_size());
}

// all_gather and broadcast (f32, f64, bf16), all_reduce (sum, avg, max) and reduce_scatter (f32, f64) of device
// tensors equal those of the same values on the CPU (through MPI); a bf16 reduction is refused on the device too.
TEST(DistCuda, CollectivesOnDeviceTensorsMatchTheCpu) {
  SIAM_REQUIRE_CUDA();
  dist::Communicator& world = dist::world();
  ASSERT_EQ(world.world_size(), 2);
  const Device dev = my_device(world);
  if (world.rank() == 0) std::printf("world backend: %s\n", world.backend().c_str());
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    const std::string what = dtype_name(dt);
    const Tensor mine = global_batch({6, 5}, 30 + static_cast<uint64_t>(world.rank())).to(dt);
    EXPECT_REL_NEAR(world.all_gather(mine.to(dev)).to(kCPU), world.all_gather(mine), 0, what + " all_gather");
    Tensor bc = mine.clone(), bd = mine.to(dev);
    world.broadcast(bc, 1);
    world.broadcast(bd, 1);
    EXPECT_REL_NEAR(bd.to(kCPU), bc, 0, what + " broadcast");
    if (dt == DType::bf16) {  // a storage type: reductions are refused on every backend, the device's too
      Tensor d = mine.to(dev);
      EXPECT_THROW(world.all_reduce(d, dist::ReduceOp::sum), Error);
      continue;
    }
    for (dist::ReduceOp op : {dist::ReduceOp::sum, dist::ReduceOp::avg, dist::ReduceOp::max}) {
      Tensor c = mine.clone(), d = mine.to(dev);
      world.all_reduce(c, op);
      world.all_reduce(d, op);
      ASSERT_TRUE(d.is_cuda());
      EXPECT_REL_NEAR(d.to(kCPU), c, 1e-6, what + " all_reduce " + dist::reduce_op_name(op));
    }
    const Tensor big = global_batch({4, 3}, 40 + static_cast<uint64_t>(world.rank())).to(dt);
    EXPECT_REL_NEAR(world.reduce_scatter(big.to(dev), dist::ReduceOp::sum).to(kCPU),
                    world.reduce_scatter(big, dist::ReduceOp::sum), 1e-6, what + " reduce_scatter");
  }
}

methods::MethodOptions small(const std::string& name) {
  methods::MethodOptions o = tiny_method_options(name);
  o.queue_size = 40;
  o.shuffle_bn_groups = 1;
  o.seed = 5;
  return o;
}

std::shared_ptr<methods::Method> build(const std::string& name) {
  manual_seed(7);
  auto m = methods::make_method(small(name), tiny_resnet(2));
  m->to(DType::f64);  // f64: 1e-5 then measures the algebra, not summation order
  return m;
}

class MethodOnTwoDevices : public ::testing::TestWithParam<std::string> {};

// Five SGD steps through DDP (bucketed, launched from the gradient hooks) with synchronized batch norms, on the
// devices of 2 ranks, end in the weights of five steps of one CPU process on the doubled batch.
TEST_P(MethodOnTwoDevices, FiveDdpStepsEndInTheWeightsOfOneCpuProcess) {
  SIAM_REQUIRE_CUDA();
  dist::Communicator& world = dist::world();
  const std::string name = GetParam();
  const Device dev = my_device(world);
  auto single = dist::detail::make_single("ref", 60);
  auto ref = build(name);
  ref->set_communicator(single.get());
  auto m = build(name);
  m->set_communicator(&world);
  nn::convert_sync_batchnorm(*m, &world);
  m->to(dev);
  expect_five_ddp_steps_match(name, *ref, *m, world, dev);
}

INSTANTIATE_TEST_SUITE_P(All, MethodOnTwoDevices, ::testing::ValuesIn(methods::method_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace siam::test

// How many kernel launches the multi-tensor ops make (kernels/cuda/multi_tensor.cu), counted by the emulator
// (kernels/emu/simt.h's launch_counts; built only into siam_tests_cuda_emu). Issue 4 asks for one launch over
// all parameter tensors through chunked metadata, not a kernel per tensor: over ResNet-50's 161 parameter
// tensors the EMA and the SGD step are one launch each, and LARS two (its norms, then the step). A list longer
// than one launch's table (320 tensor slots) takes a second launch, not one per tensor. And InfoNCE's column
// ranges: the launches that merge them happen exactly when the grid has too few row blocks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/optim/ema.h"
#include "engine/optim/lars.h"
#include "engine/optim/sgd.h"
#include "engine/ops/siamese.h"
#include "engine/tensor.h"
#include "kernels/emu/simt.h"
#include "models/resnet.h"

namespace siam {
namespace {

// ResNet-50's parameter shapes (161 tensors: convolutions, batch-norm weights and biases, the classifier) at a
// quarter of its width, so that the emulator runs them in a fraction of a second.
std::vector<Shape> resnet50_shapes() {
  std::vector<Shape> s;
  for (const Tensor& p : models::resnet50({.width = 16, .num_classes = 1000})->parameters()) s.push_back(p.shape());
  return s;
}

std::vector<Tensor> on_device(const std::vector<Shape>& shapes, bool grad) {
  std::vector<Tensor> ts;
  for (const Shape& sh : shapes) {
    Tensor t = randn(sh).to(Device("cuda:0"));
    if (grad) {
      t.set_requires_grad(true);
      t.set_grad(randn(sh).to(Device("cuda:0")));
    }
    ts.push_back(t);
  }
  return ts;
}

// Launches since the reset whose kernel name contains `part`, and launches of any kernel.
struct Counted {
  int64_t matching = 0, all = 0;
};
Counted launches(const std::string& part) {
  Counted c;
  for (const auto& [name, n] : emu::launch_counts()) {
    c.all += n;
    if (name.find(part) != std::string::npos) c.matching += n;
  }
  return c;
}

TEST(CudaEmuLaunches, MultiTensorStepsOverResNet50AreOneLaunchEach) {
  manual_seed(3);
  const std::vector<Shape> shapes = resnet50_shapes();
  ASSERT_EQ(shapes.size(), 161u);
  std::vector<Tensor> target = on_device(shapes, false), online = on_device(shapes, false);

  emu::reset_launch_counts();
  optim::ema_update(target, online, 0.99);
  Counted ema = launches("mt_ema_kernel1");
  EXPECT_EQ(ema.matching, 1);
  EXPECT_EQ(ema.all, 1) << "the EMA launched other kernels too";

  std::vector<Tensor> params = on_device(shapes, true);
  optim::SGD sgd(params, {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  emu::reset_launch_counts();
  sgd.step();
  Counted step = launches("mt_sgd_kernel1");
  EXPECT_EQ(step.matching, 1);
  EXPECT_EQ(step.all, 1) << "the SGD step launched other kernels too";

  optim::LARS lars(params, {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-6});
  emu::reset_launch_counts();
  lars.step();
  EXPECT_EQ(launches("mt_lars_norms_kernel1").matching, 1);
  EXPECT_EQ(launches("mt_lars_kernel1").matching, 1);
}

TEST(CudaEmuLaunches, MoreTensorsThanOneTableTakeASecondLaunch) {
  manual_seed(4);
  std::vector<Shape> shapes(400, Shape{5});  // 400 tensors of 5 elements: 320 slots, then 80
  std::vector<Tensor> target = on_device(shapes, false), online = on_device(shapes, false);
  emu::reset_launch_counts();
  optim::ema_update(target, online, 0.5);
  EXPECT_EQ(launches("mt_ema_kernel1").matching, 2);
}

// Few rows against many columns take column ranges (kernels/cuda/infonce.cu, split_plan) whose partial results
// one more launch merges: 37 queries against 3000 queue rows, forward (lse states) and backward (gradients). A
// batch whose row blocks fill the device does not split (no merge launches).
TEST(CudaEmuLaunches, FewQueriesAgainstALongQueueTakeColumnRanges) {
  manual_seed(5);
  const Device dev("cuda:0");
  Tensor q = randn({37, 64}).to(dev).set_requires_grad(true), k = randn({37, 64}).to(dev);
  Tensor queue = randn({3000, 64}).to(dev);
  emu::reset_launch_counts();
  moco_infonce(q, k, queue, 0.2).backward();
  EXPECT_EQ(launches("infonce_lse_merge_kernel").matching, 1);
  EXPECT_EQ(launches("infonce_sum_ranges_kernel").matching, 1);
  Tensor queue_short = randn({500, 64}).to(dev);
  emu::reset_launch_counts();
  moco_infonce(q, k, queue_short, 0.2).backward();
  EXPECT_EQ(launches("infonce_lse_merge_kernel").matching, 0);
  EXPECT_EQ(launches("infonce_sum_ranges_kernel").matching, 0);
}

}  // namespace
}  // namespace siam

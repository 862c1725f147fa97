// siam train's loop on a CUDA device against the CPU: the same config (a tiny synthetic run) gives losses that
// agree to f32 rounding, and bf16 autocast trains with finite losses. Skipped without a device.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "engine/core/device.h"
#include "train/config.h"
#include "tests/cuda/cuda_test.h"
#include "train/trainer.h"

namespace siam {
namespace {

std::string tiny(const std::string& out) {
  return "data: {kind: synthetic, size: 64, height: 16, width: 16, classes: 4, channels: 3}\n"
         "views: [{name: g, count: 2, size: 16, crop: {scale: [0.3, 1.0]}, flip: 0.5}]\n"
         "model: {arch: resnet18, stem: cifar, width: 8}\n"
         "method: {name: simclr, projector: {hidden: 32, out: 16}}\n"
         "optimizer: {name: sgd, lr: 0.05, momentum: 0.9}\n"
         "train: {epochs: 2, batch_size: 32, seed: 2, threads: 2, loader_threads: 1}\n"
         "eval: {knn: true, knn_k: 5}\n"
         "out_dir: " +
         out + "\n";
}

TEST(TrainCuda, MatchesTheCpuRunAndTrainsInBf16) {
  SIAM_REQUIRE_CUDA();
  // per process: the real and the emulated suites may run at once
  const auto dir = std::filesystem::temp_directory_path() / ("siam_train_cuda." + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  auto cpu = train::run_training(train::parse_train_config(tiny((dir / "cpu").string()), "tiny"), {.quiet = true});
  auto gpu = train::run_training(train::parse_train_config(tiny((dir / "gpu").string()), "tiny", {"train.device=cuda"}),
                                 {.quiet = true});
  ASSERT_EQ(cpu.history.size(), gpu.history.size());
  for (size_t e = 0; e < cpu.history.size(); ++e)
    EXPECT_NEAR(gpu.history[e].loss, cpu.history[e].loss, 2e-3 * std::abs(cpu.history[e].loss)) << "epoch " << e + 1;
  auto bf = train::run_training(
      train::parse_train_config(tiny((dir / "bf16").string()), "tiny", {"train.device=cuda", "train.precision=bf16"}),
      {.quiet = true});
  for (auto& m : bf.history) EXPECT_TRUE(std::isfinite(m.loss));
  EXPECT_NEAR(bf.history[0].loss, cpu.history[0].loss, 0.05 * std::abs(cpu.history[0].loss));
  std::filesystem::remove_all(dir);
}

// Stop after step 2 of 4 and resume on the GPU: the checkpoint loads on the CPU, and the optimizer state
// (SGD's momentum buffers) must follow the parameters to the device; the losses match the uninterrupted run
// (not bitwise: cuDNN may pick other algorithms in another process).
TEST(TrainCuda, ResumesOnTheDevice) {
  SIAM_REQUIRE_CUDA();
  const auto dir =
      std::filesystem::temp_directory_path() / ("siam_train_cuda_resume." + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  const train::Overrides dev = {"train.device=cuda"};
  auto full = train::run_training(train::parse_train_config(tiny((dir / "full").string()), "tiny", dev), {.quiet = true});
  auto cfg = train::parse_train_config(tiny((dir / "cut").string()), "tiny", dev);
  auto cut = train::run_training(cfg, {.stop_after_step = 1, .quiet = true});
  ASSERT_TRUE(cut.interrupted);
  auto resumed = train::run_training(cfg, {.resume_dir = (dir / "cut").string(), .quiet = true});
  ASSERT_EQ(resumed.history.size(), full.history.size());
  for (size_t e = 0; e < full.history.size(); ++e)
    EXPECT_NEAR(resumed.history[e].loss, full.history[e].loss, 1e-3 * std::abs(full.history[e].loss))
        << "epoch " << e + 1;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace siam

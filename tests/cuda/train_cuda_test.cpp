// siam train's loop on a CUDA device against the CPU: the same config (a tiny synthetic run) gives losses that
// agree to f32 rounding, and bf16 autocast trains with finite losses. Skipped without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/core/device.h"
#include "train/config.h"
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
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only build)";
  const auto dir = std::filesystem::temp_directory_path() / "siam_train_cuda";
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
}

}  // namespace
}  // namespace siam

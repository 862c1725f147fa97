// siam train's loop on 2 ranks (next to TrainerOnTwoRanks.EndsInTheWeightsOfOneProcessWithTheSameGlobalBatch in
// methods_dist_test.cpp): gradient accumulation (train.accumulate) against one process and its DDP traffic
// counted, train.ddp_bucket_mb reaching DDP, the per-rank divisibility error, and resume on 2 ranks against an
// uninterrupted run with rank 1 writing nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>

#include "engine/dist/backends.h"
#include "engine/io/checkpoint.h"
#include "tests/dist/counting_comm.h"
#include "tests/dist/dist_util.h"
#include "tests/unit/test_util.h"
#include "train/config.h"
#include "train/trainer.h"

namespace siam::test {
namespace {


// train.accumulate = 2 on 2 ranks x 16 samples (micro-batches of 8 per rank, 16 over the ranks) ends in the
// weights of one process at batch 32 with accumulate = 2 (micro-batches of 16: the same samples, since rank r
// reads positions r, r + 2, ... of the epoch). DDP runs on a counting communicator: its duplicate all-reduces
// exactly once per bucket and step, so the first micro-batch of every step communicated nothing.
// train.ddp_bucket_mb reaches DDP (several buckets at 0.01 MB).
TEST(TrainerOnTwoRanks, AccumulatedMicroBatchesEqualOneProcessAndAllReduceOncePerStep) {
  dist::Communicator& world = dist::world();
  const std::string base = (std::filesystem::temp_directory_path() / "siam_dist_trainer_acc").string();
  const std::string d1 = base + "_single", d2 = base + "_two";
  auto single = dist::detail::make_single("ref", 60);
  if (world.rank() == 0) {
    std::filesystem::remove_all(d1);
    std::filesystem::remove_all(d2);
  }
  world.barrier();
  const train::Overrides ov = {"train.accumulate=2", "train.ddp_bucket_mb=0.01"};
  train::TrainOptions o1;
  o1.quiet = true;
  o1.comm = single.get();
  o1.write_outputs = world.rank() == 0;
  auto r1 = train::run_training(train::parse_train_config(tiny_train_yaml(d1, 32), "tiny", ov), o1);
  CountingCommunicator counting(world);
  train::TrainOptions o2;
  o2.quiet = true;
  o2.comm = &counting;
  auto r2 = train::run_training(train::parse_train_config(tiny_train_yaml(d2, 32), "tiny", ov), o2);
  world.barrier();
  EXPECT_EQ(r1.ddp_buckets, 0);
  EXPECT_GT(r2.ddp_buckets, 1) << "train.ddp_bucket_mb = 0.01 did not reach DDP";
  ASSERT_EQ(r2.steps_done, 2);
  const CollectiveCounts& ddp = counting.duplicate_counts(world.name() + ".ddp");
  EXPECT_EQ(ddp.all_reduce, r2.steps_done * r2.ddp_buckets)
      << "DDP's all-reduces: one per bucket and optimizer step (none for the no_sync micro-batch)";
  ASSERT_EQ(r1.history.size(), 1u);
  ASSERT_EQ(r2.history.size(), 1u);
  EXPECT_NEAR(r1.history[0].loss, r2.history[0].loss, 1e-5 * std::abs(r1.history[0].loss));
  expect_same_checkpoint_weights(d1, d2, world);
  world.barrier();
  if (world.rank() == 0) {
    std::filesystem::remove_all(d1);
    std::filesystem::remove_all(d2);
  }
}

// train.accumulate must divide the per-rank batch: 36 / 4 is fine for the config, 36 / 2 ranks = 18 / 4 is not.
TEST(TrainerOnTwoRanks, AccumulateMustDivideThePerRankBatch) {
  dist::Communicator& world = dist::world();
  if (world.world_size() != 2) GTEST_SKIP() << "needs 2 ranks";
  const std::string out = (std::filesystem::temp_directory_path() / "siam_dist_trainer_acc_bad").string();
  auto c = train::parse_train_config(tiny_train_yaml(out, 36), "tiny", {"train.accumulate=4"});
  const std::string e = error_of([&] { train::run_training(c, {.quiet = true}); });
  EXPECT_NE(e.find("train.accumulate (4) must divide the per-rank batch"), std::string::npos) << e;
  EXPECT_NE(e.find("= 18"), std::string::npos) << e;
  world.barrier();
}

// Resume on 2 ranks: 2 epochs interrupted (at the end of epoch 1, or after the first step of epoch 2) and resumed
// from rank 0's checkpoint on both ranks end in bitwise the weights and the same losses as 2 uninterrupted
// epochs. Rank 1 has an out_dir of its own, which stays empty through all of it: only rank 0 writes.
TEST(TrainerOnTwoRanks, ResumeEqualsAnUninterruptedRunAndOnlyRankZeroWrites) {
  namespace fs = std::filesystem;
  dist::Communicator& world = dist::world();
  const int rank = world.rank();
  const std::string base = (fs::temp_directory_path() / "siam_dist_trainer_resume").string();
  // this rank's out_dir of a run; rank 1's are created empty and must stay so
  auto out_of = [&](const std::string& run, int r) { return base + "_" + run + "_rank" + std::to_string(r); };
  auto fresh = [&](const std::string& run) {
    const std::string d = out_of(run, rank);
    fs::remove_all(d);
    if (rank != 0) fs::create_directories(d);
    world.barrier();
    return d;
  };
  const train::Overrides ov = {"train.epochs=2"};
  train::TrainOptions quiet;
  quiet.quiet = true;
  const std::string full = fresh("full");
  auto rf = train::run_training(train::parse_train_config(tiny_train_yaml(full, 32), "tiny", ov), quiet);
  ASSERT_EQ(rf.steps_done, 4);
  EXPECT_EQ(rf.ddp_buckets, 1) << "train.ddp_bucket_mb's default (25 MB) holds the whole tiny model";
  for (int64_t stop_after : {1, 2}) {  // the last step of epoch 1; the first of epoch 2
    SCOPED_TRACE("stopped after step " + std::to_string(stop_after));
    const std::string cut = fresh("cut" + std::to_string(stop_after));
    const train::TrainConfig c = train::parse_train_config(tiny_train_yaml(cut, 32), "tiny", ov);
    train::TrainOptions o1 = quiet;
    o1.stop_after_step = stop_after;
    auto r1 = train::run_training(c, o1);
    ASSERT_TRUE(r1.interrupted);
    EXPECT_EQ(r1.steps_done, stop_after + 1);
    world.barrier();  // rank 0's checkpoint is written
    train::TrainOptions o2 = quiet;
    o2.resume_dir = out_of("cut" + std::to_string(stop_after), 0);  // every rank resumes from rank 0's files
    auto r2 = train::run_training(c, o2);
    world.barrier();
    EXPECT_FALSE(r2.interrupted);
    EXPECT_EQ(r2.steps_done, 4);
    ASSERT_EQ(r2.history.size(), rf.history.size());
    for (size_t i = 0; i < rf.history.size(); ++i)
      EXPECT_EQ(r2.history[i].loss, rf.history[i].loss) << "epoch " << i + 1;
    if (rank == 0) {
      auto a = io::load_training_checkpoint(full + "/checkpoint.safetensors");
      auto b = io::load_training_checkpoint(cut + "/checkpoint.safetensors");
      EXPECT_EQ(a.epoch, 2);
      EXPECT_EQ(b.epoch, 2);
      ASSERT_EQ(a.model.size(), b.model.size());
      for (size_t i = 0; i < a.model.size(); ++i) {
        const Tensor& x = a.model[i].second;
        const Tensor& y = b.model[i].second;
        ASSERT_EQ(x.nbytes(), y.nbytes()) << a.model[i].first;
        EXPECT_EQ(std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()), 0) << a.model[i].first;
      }
      for (const char* f : {"checkpoint.safetensors", "encoder.safetensors", "metrics.jsonl", "config.yaml"})
        EXPECT_TRUE(fs::exists(fs::path(cut) / f)) << f;
    }
  }
  if (rank != 0) {
    for (const std::string run : {"full", "cut1", "cut2"}) {
      const std::string d = out_of(run, rank);
      ASSERT_TRUE(fs::is_directory(d)) << d;
      for (const auto& e : fs::directory_iterator(d)) ADD_FAILURE() << "rank " << rank << " wrote " << e.path();
    }
  }
  world.barrier();
  for (const std::string run : {"full", "cut1", "cut2"}) fs::remove_all(out_of(run, rank));
}

}  // namespace
}  // namespace siam::test

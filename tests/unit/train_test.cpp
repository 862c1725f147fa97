// siam train's configuration (keys, values, --set) and loop (metrics, checkpoints, exact resume, stop,
// non-finite loss) on a small synthetic dataset. (train/config.h, train/trainer.h)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/io/checkpoint.h"
#include "engine/io/json.h"
#include "engine/io/safetensors.h"
#include "tests/unit/test_util.h"
#include "train/config.h"
#include "train/trainer.h"

namespace siam {
namespace {

namespace fs = std::filesystem;
using test::error_of;

// 48 synthetic 16x16 RGB images, 2 views, a ResNet-18 of width 4, batch 16: 3 steps per epoch.
std::string tiny_config(const std::string& out_dir, const std::string& method = "simclr") {
  return "data: {kind: synthetic, size: 48, height: 16, width: 16, classes: 4, channels: 3}\n"
         "views:\n"
         "  - {name: g, count: 2, size: 16, crop: {scale: [0.3, 1.0]}, flip: 0.5,\n"
         "     color_jitter: {p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1},\n"
         "     normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}}\n"
         "model: {arch: resnet18, stem: cifar, width: 4}\n"
         "method: {name: " +
         method +
         ", projector: {hidden: 32, out: 16}}\n"
         "optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 5e-4}\n"
         "schedule: {warmup_epochs: 1}\n"
         "train: {epochs: 2, batch_size: 16, seed: 3, threads: 2, loader_threads: 0, log_every_s: 0}\n"
         "eval: {knn: true, knn_k: 5, batch_size: 16}\n"
         "out_dir: " +
         out_dir + "\n";
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(TrainConfig, ReadsEverySectionAndAppliesOverrides) {
  auto c = train::parse_train_config(tiny_config("/tmp/x"), "tiny.yaml",
                                     {"train.epochs=7", "method.temperature=0.5", "model.width=8", "data.limit=32",
                                      "views.0.count=3", "method.projector.hidden=64"});
  EXPECT_EQ(c.train.epochs, 7);
  EXPECT_DOUBLE_EQ(c.method.temperature, 0.5);
  EXPECT_EQ(c.model.width, 8);
  EXPECT_EQ(c.data.data.limit, 32);
  EXPECT_EQ(c.data.views.at(0).count, 3);
  EXPECT_EQ(c.method.projector.hidden, 64);
  EXPECT_EQ(c.method.projector.out, 16);
  EXPECT_EQ(c.method.seed, 3u);
  EXPECT_EQ(c.out_dir, "/tmp/x");
  // The resolved YAML carries the overrides and parses back to the same values.
  auto c2 = train::parse_train_config(c.resolved_yaml, "resolved");
  EXPECT_EQ(c2.train.epochs, 7);
  EXPECT_EQ(c2.data.views.at(0).count, 3);
}

TEST(TrainConfig, RejectsUnknownKeysAndBadValuesNamingThem) {
  const std::string base = tiny_config("/tmp/x");
  EXPECT_NE(error_of([&] { train::parse_train_config(base, "f.yaml", {"train.epoch=3"}); }).find("train.epoch"),
            std::string::npos);
  EXPECT_NE(error_of([&] { train::parse_train_config(base, "f.yaml", {"trian.epochs=3"}); }).find("trian"),
            std::string::npos);
  std::string e = error_of([&] { train::parse_train_config(base, "f.yaml", {"method.lambda=0.1"}); });
  EXPECT_NE(e.find("method.lambda"), std::string::npos) << e;  // simclr has no lambda
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"train.batch_size=abc"}); });
  EXPECT_NE(e.find("train.batch_size"), std::string::npos) << e;
  EXPECT_NE(e.find("abc"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"optimizer.name=adam"}); });
  EXPECT_NE(e.find("optimizer.name"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"method.name=simclear"}); });
  EXPECT_NE(e.find("simclear"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"method.batch_stats=all_reduce"}); });
  EXPECT_NE(e.find("method.batch_stats"), std::string::npos) << e;  // simclr gathers its negatives
  const std::string barlow = tiny_config("/tmp/x", "barlow_twins");
  EXPECT_EQ(train::parse_train_config(barlow, "f.yaml", {"method.batch_stats=all_reduce"}).method.batch_stats,
            "all_reduce");
  e = error_of([&] { train::parse_train_config(barlow, "f.yaml", {"method.batch_stats=reduce"}); });
  EXPECT_NE(e.find("method.batch_stats"), std::string::npos) << e;
  methods::MethodOptions bad = methods::defaults_for("vicreg");
  bad.batch_stats = "scatter";
  e = error_of([&] { methods::check_batch_stats("vicreg", bad); });
  EXPECT_NE(e.find("vicreg: method.batch_stats must be gather or all_reduce, got 'scatter'"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"method.temperature=-1"}); });
  EXPECT_NE(e.find("method.temperature"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"method.projector.widht=3"}); });
  EXPECT_NE(e.find("method.projector.widht"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"views.0.flip=2"}); });
  EXPECT_NE(e.find("flip"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"train.epochs"}); });
  EXPECT_NE(e.find("key=value"), std::string::npos) << e;
  e = error_of([&] { train::parse_train_config(base, "f.yaml", {"train.precision=bf16"}); });
  EXPECT_NE(e.find("train.device: cuda"), std::string::npos) << e;
  e = error_of([&] { train::load_train_config("/nonexistent/recipe.yaml"); });
  EXPECT_NE(e.find("/nonexistent/recipe.yaml"), std::string::npos) << e;
}

TEST(TrainConfig, EveryShippedRecipeParses) {
  int n = 0;
  for (auto& f : fs::directory_iterator("configs")) {
    const std::string name = f.path().filename().string();
    if (name.rfind("views_", 0) == 0 || f.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(train::load_train_config(f.path().string())) << name;
    ++n;
  }
  EXPECT_GE(n, 8);
}

TEST(Trainer, WritesMetricsCurveAndCheckpointsAndPrintsFinalJson) {
  const std::string dir = test::tmp_path("trainer", "run_a");
  fs::remove_all(dir);
  auto c = train::parse_train_config(tiny_config(dir), "tiny");
  auto r = train::run_training(c, {.quiet = true});
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps_done, 6);
  for (auto& m : r.history) {
    EXPECT_TRUE(std::isfinite(m.loss));
    EXPECT_GE(m.knn_top1, 0.0);
    EXPECT_LE(m.knn_top1, 1.0);
    EXPECT_GT(m.images_per_s, 0.0);
  }
  std::string lines = read_all(fs::path(dir) / "metrics.jsonl");
  std::stringstream ss(lines);
  std::string line;
  int count = 0;
  while (std::getline(ss, line)) {
    auto v = io::parse_json(line, "metrics.jsonl");
    for (const char* k : {"epoch", "loss", "knn_top1", "images_per_s"}) EXPECT_NE(v.member(k), nullptr) << k;
    ++count;
  }
  EXPECT_EQ(count, 2);
  EXPECT_NE(read_all(fs::path(dir) / "curve.svg").find("<svg"), std::string::npos);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "checkpoint.safetensors"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "config.yaml"));
  auto enc = io::load_safetensors((fs::path(dir) / "encoder.safetensors").string());
  EXPECT_EQ(enc.metadata.at("arch"), "resnet18");
  EXPECT_TRUE(enc.tensors.size() > 10);
  EXPECT_EQ(enc.tensors.front().first.rfind("conv1.", 0), 0u);  // torchvision names
  auto fj = io::parse_json(r.final_json, "final json");
  EXPECT_NE(fj.member("knn_top1"), nullptr);
}

// Stop mid-epoch 2 (after step 4 of 6), resume: the same losses and bitwise the same weights as run_a.
TEST(Trainer, ResumeGivesTheSameLossesAndWeightsAsAnUninterruptedRun) {
  const std::string da = test::tmp_path("trainer", "resume_full"), db = test::tmp_path("trainer", "resume_cut");
  fs::remove_all(da);
  fs::remove_all(db);
  for (const char* m : {"simclr", "moco"}) {
    train::Overrides ov;
    if (std::string(m) == "moco") ov.push_back("method.queue_size=32");
    auto ca = train::parse_train_config(tiny_config(da, m), "tiny", ov);
    auto ra = train::run_training(ca, {.quiet = true});
    auto cb = train::parse_train_config(tiny_config(db, m), "tiny", ov);
    auto rb1 = train::run_training(cb, {.stop_after_step = 3, .quiet = true});
    ASSERT_TRUE(rb1.interrupted);
    EXPECT_EQ(rb1.steps_done, 4);
    auto rb = train::run_training(cb, {.resume_dir = db, .quiet = true});
    ASSERT_EQ(rb.history.size(), ra.history.size()) << m;
    for (size_t i = 0; i < ra.history.size(); ++i) {
      EXPECT_EQ(ra.history[i].loss, rb.history[i].loss) << m << " epoch " << i + 1;
      EXPECT_EQ(ra.history[i].knn_top1, rb.history[i].knn_top1) << m << " epoch " << i + 1;
    }
    auto wa = io::load_training_checkpoint(da + "/checkpoint.safetensors");
    auto wb = io::load_training_checkpoint(db + "/checkpoint.safetensors");
    ASSERT_EQ(wa.model.size(), wb.model.size());
    for (size_t i = 0; i < wa.model.size(); ++i) {
      const Tensor& x = wa.model[i].second;
      const Tensor& y = wb.model[i].second;
      ASSERT_EQ(x.nbytes(), y.nbytes());
      EXPECT_EQ(std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()), 0) << m << " " << wa.model[i].first;
    }
    fs::remove_all(da);
    fs::remove_all(db);
  }
}

TEST(Trainer, ACudaRunWithoutADeviceIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present (tests/cuda runs the CUDA path)";
  auto c = train::parse_train_config(tiny_config(test::tmp_path("trainer", "cuda")), "tiny", {"train.device=cuda"});
  std::string e = error_of([&] { train::run_training(c, {.quiet = true}); });
  EXPECT_NE(e.find("train.device is cuda"), std::string::npos) << e;
}

TEST(Trainer, ANonFiniteLossStopsWithTheStepAndKeepsTheLastCheckpoint) {
  const std::string dir = test::tmp_path("trainer", "nan");
  fs::remove_all(dir);
  // A learning rate of 1e30 blows the weights up within a few steps.
  auto c = train::parse_train_config(tiny_config(dir), "tiny",
                                     {"optimizer.lr=1e30", "train.epochs=3", "schedule.name=constant"});
  std::string e = error_of([&] { train::run_training(c, {.quiet = true}); });
  EXPECT_NE(e.find("at step"), std::string::npos) << e;
  EXPECT_NE(e.find("loss became"), std::string::npos) << e;
}

// train.accumulate and train.ddp_bucket_mb: the defaults, values read through --set, and errors naming the key.
TEST(TrainConfig, ReadsAndValidatesAccumulateAndDdpBucketMb) {
  auto d = train::parse_train_config(tiny_config("x"), "tiny");
  EXPECT_EQ(d.train.accumulate, 1);
  EXPECT_EQ(d.train.ddp_bucket_mb, 25.0);
  auto c = train::parse_train_config(tiny_config("x"), "tiny", {"train.accumulate=4", "train.ddp_bucket_mb=2.5"});
  EXPECT_EQ(c.train.accumulate, 4);
  EXPECT_EQ(c.train.ddp_bucket_mb, 2.5);
  auto bad = [](const train::Overrides& ov) {
    return error_of([&] { train::parse_train_config(tiny_config("x"), "tiny", ov); });
  };
  auto names = [](const std::string& e, const char* key, const char* what) {
    return e.find(key) != std::string::npos && e.find(what) != std::string::npos;
  };
  // tiny_config's batch is 16
  struct Case {
    const char *ov, *key, *what;
  };
  for (auto [ov, key, what] : std::vector<Case>{{"train.accumulate=0", "train.accumulate", ">= 1"},
                                                {"train.accumulate=-2", "train.accumulate", ">= 1"},
                                                {"train.accumulate=3", "train.accumulate", "must divide"},
                                                {"train.accumulate=16", "train.accumulate", ">= 2 samples"},
                                                {"train.accumulate=two", "train.accumulate", "an integer"},
                                                {"train.ddp_bucket_mb=0", "train.ddp_bucket_mb", "> 0"},
                                                {"train.ddp_bucket_mb=-1", "train.ddp_bucket_mb", "> 0"},
                                                {"train.ddp_bucket_mb=big", "train.ddp_bucket_mb", "a number"}}) {
    const std::string e = bad({ov});
    EXPECT_TRUE(names(e, key, what)) << ov << ": " << e;
  }
}

// Gradient accumulation averages the micro-batches' gradients. On a folder of one image repeated, with views that
// leave it unchanged, every micro-batch has the whole batch's statistics (the encoder's batch norms average over
// N, H, W; the heads have none) and SimSiam's per-sample loss, so 2 micro-batches of 8 end in the weights of
// one batch of 16; a sum instead of a mean would double every step. (The batch norms' running statistics differ:
// they are updated at every forward, as in PyTorch.)
TEST(Trainer, AccumulatedIdenticalMicroBatchesGiveTheWeightsOfTheWholeBatch) {
  const std::string root = test::tmp_path("trainer", "accumulate_images");
  fs::remove_all(root);
  fs::create_directories(root);
  data::Image img(8, 8, 3);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint8_t>((i * 37 + 11) % 251);
  for (int i = 0; i < 32; ++i) data::write_png(root + "/img" + std::to_string(i) + ".png", img);
  auto config = [&](const std::string& out) {
    return "data: {kind: image_folder, root: " + root +
           "}\n"
           "views: [{name: g, count: 2, size: 8, crop: false, flip: 0}]\n"
           "model: {arch: resnet18, stem: cifar, width: 2}\n"
           "method: {name: simsiam, projector: {hidden: 16, out: 8, layers: 2, hidden_bn: false, last_bn: false, "
           "bias: true},\n"
           "         predictor: {hidden: 8, out: 8, layers: 2, hidden_bn: false, bias: true}}\n"
           "optimizer: {name: sgd, lr: 0.5, momentum: 0.9, weight_decay: 0}\n"
           "schedule: {name: constant}\n"
           "train: {epochs: 1, batch_size: 16, seed: 2, threads: 1, loader_threads: 0}\n"
           "eval: {knn: false}\n"
           "out_dir: " +
           out + "\n";
  };
  const std::string d1 = test::tmp_path("trainer", "accumulate_1"), d2 = test::tmp_path("trainer", "accumulate_2");
  fs::remove_all(d1);
  fs::remove_all(d2);
  auto r1 = train::run_training(train::parse_train_config(config(d1), "acc1"), {.quiet = true});
  auto r2 = train::run_training(train::parse_train_config(config(d2), "acc2", {"train.accumulate=2"}), {.quiet = true});
  ASSERT_EQ(r1.steps_done, 2);
  ASSERT_EQ(r2.steps_done, 2);
  EXPECT_NEAR(r2.history[0].loss, r1.history[0].loss, 1e-5 * std::abs(r1.history[0].loss));
  auto a = io::load_training_checkpoint(d1 + "/checkpoint.safetensors");
  auto b = io::load_training_checkpoint(d2 + "/checkpoint.safetensors");
  ASSERT_EQ(a.model.size(), b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) {
    // batch norms' running statistics move once per forward, so twice per step with 2 micro-batches
    if (a.model[i].second.dtype() == DType::i64 || a.model[i].first.find(".running_") != std::string::npos) continue;
    auto va = a.model[i].second.to(DType::f64).to_vector<double>();
    auto vb = b.model[i].second.to(DType::f64).to_vector<double>();
    ASSERT_EQ(va.size(), vb.size());
    double d = 0, m = 0;
    for (size_t j = 0; j < va.size(); ++j) {
      d = std::max(d, std::abs(va[j] - vb[j]));
      m = std::max(m, std::abs(va[j]));
    }
    EXPECT_LE(d, 1e-4 * std::max(m, 1e-3)) << a.model[i].first;
  }
  fs::remove_all(root);
  fs::remove_all(d1);
  fs::remove_all(d2);
}

}  // namespace
}  // namespace siam

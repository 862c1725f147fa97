// siam train: a pretraining run from a YAML config (train/config.h, train/trainer.h). SIGINT / SIGTERM
// finish the current step, save a checkpoint and exit 130 / 143 with a message; a second signal kills.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "apps/options.h"
#include "engine/dist/dist.h"
#include "train/config.h"
#include "train/trainer.h"

namespace siam::app {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) {
  if (g_stop.load()) {  // second signal: give up at once
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal.store(sig);
  g_stop.store(true);
}

const char* kTrainUsage =
    "usage: siam train --config FILE [--set key=value ...] [--resume DIR] [--quiet 1]\n"
    "  --config FILE    a recipe (configs/<method>_<dataset>.yaml); with --resume, DIR/config.yaml by default\n"
    "  --set key=value  override a dotted key (train.epochs=1, data.limit=2048, method.temperature=0.5, ...)\n"
    "  --resume DIR     continue the run saved in DIR (its checkpoint.safetensors)\n"
    "  --quiet 1        no progress lines (the final JSON object is still printed)\n";

}  // namespace

int train(int argc, char** argv) {
  Options a(argc, argv, 2, {"config", "set", "resume", "quiet"}, kTrainUsage);
  if (a.help()) {
    std::fputs(kTrainUsage, stdout);
    return 0;
  }
  std::string config = a.str("config");
  const std::string resume = a.str("resume");
  if (config.empty() && !resume.empty()) config = (std::filesystem::path(resume) / "config.yaml").string();
  SIAM_CHECK(!config.empty(), "--config FILE is required\n", kTrainUsage);
  std::vector<std::string> sets = a.all("set");
  train::TrainConfig cfg = train::load_train_config(config, sets);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  train::TrainOptions to;
  to.resume_dir = resume;
  to.stop = &g_stop;
  to.quiet = a.integer("quiet", 0) != 0;
  train::TrainResult r = train::run_training(cfg, to);
  if (r.interrupted) {
    if (!dist::is_main()) return 130;
    int sig = g_signal.load();
    std::fprintf(stderr, "siam train: interrupted by %s after step %lld; resume with: siam train --resume %s\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT", static_cast<long long>(r.steps_done), cfg.out_dir.c_str());
    return sig == SIGTERM ? 143 : 130;
  }
  if (dist::is_main()) std::printf("%s\n", r.final_json.c_str());
  return 0;
}

}  // namespace siam::app

// The `siam` command-line program: train, eval, embed, show-views, info (apps/<command>.cpp), and
//   siam demo   supervised MLP on Fashion-MNIST: the engine end to end (data, autograd, nn, optim)
// and prints one progress line per epoch and a final JSON object as the last line of stdout.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/options.h"
#include "engine/core/blas.h"
#include "engine/core/random.h"
#include "engine/dist/dist.h"
#include "engine/data/idx.h"
#include "engine/nn/activation.h"
#include "engine/nn/linear.h"
#include "engine/nn/sequential.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "kernels/common/philox.h"

namespace {

using namespace siam;

const char* kUsage =
    "usage: siam <command> [options]\n"
    "commands:\n"
    "  train    --config FILE [--set key=value ...] [--resume DIR]: self-supervised pretraining from a recipe\n"
    "           (configs/<method>_fmnist.yaml); progress lines, <out_dir>/metrics.jsonl, curve.svg, checkpoints\n"
    "  eval     knn|linear --checkpoint RUN_DIR [--data ROOT ...]: kNN or linear-probe top-1 of a trained encoder\n"
    "  embed    --checkpoint RUN_DIR --out FILE.npy|FILE.safetensors [--split train|test]: write embeddings\n"
    "  demo     train an MLP classifier on Fashion-MNIST and report test top-1\n"
    "           --data DIR (default /usr/share/datasets/fashion-mnist) --epochs N (3) --batch-size B (128)\n"
    "           --lr LR (0.1) --hidden H (256) --limit N (all training images) --threads T (all cores) --seed S (0)\n"
    "  show-views  --config FILE --out views.png [--rows N --seed S --epoch E --scale K]: a grid of images and their views\n"
    "  info     --model resnet18|34|50|101|152 [--width W --stem imagenet|cifar --in-ch C --size S --classes K]:\n"
    "           parameter count and forward FLOPs (2 per multiply-add of conv/linear layers) at S x S\n"
    "  version  print the version\n";

// (N, 28, 28) u8 -> (N, 784) f32, scaled to [0, 1] and standardized with Fashion-MNIST's mean and std.
Tensor to_features(const Tensor& images, int64_t limit) {
  int64_t n = limit > 0 ? std::min(limit, images.size(0)) : images.size(0);
  Tensor x = images.narrow(0, 0, n).reshape({n, -1}).to(DType::f32);
  return div(sub(div(x, 255.0), 0.2860), 0.3530);
}

// A random permutation of 0..n-1 from Philox (seed, epoch): Fisher-Yates driven by counter-based draws.
std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t epoch) {
  std::vector<int64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) {
    Philox4 b = philox_block(seed, 0x5048554646ull /* "SHUFF" */ + epoch, static_cast<uint64_t>(i));
    uint64_t r = (static_cast<uint64_t>(b.v[0]) << 32) | b.v[1];
    std::swap(p[i], p[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
  }
  return p;
}

double accuracy(nn::Module& model, const Tensor& x, const Tensor& y) {
  NoGradGuard ng;
  model.eval();
  int64_t correct = 0;
  auto labels = y.to_vector<int64_t>();
  for (int64_t at = 0; at < x.size(0); at += 1000) {
    int64_t b = std::min<int64_t>(1000, x.size(0) - at);
    auto pred = argmax(model(x.narrow(0, at, b)), 1).to_vector<int64_t>();
    for (int64_t i = 0; i < b; ++i) correct += pred[i] == labels[at + i];
  }
  model.train();
  return static_cast<double>(correct) / static_cast<double>(x.size(0));
}

int demo(int argc, char** argv) {
  const app::Options a(argc, argv, 2, {"data", "epochs", "batch-size", "lr", "hidden", "limit", "threads", "seed"},
                       kUsage);
  if (a.help()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string root = a.str("data", "/usr/share/datasets/fashion-mnist");
  const int epochs = static_cast<int>(a.number("epochs", 3));
  const int64_t batch = static_cast<int64_t>(a.number("batch-size", 128));
  const double lr = a.number("lr", 0.1);
  const int64_t hidden = static_cast<int64_t>(a.number("hidden", 256));
  const int64_t limit = static_cast<int64_t>(a.number("limit", 0));
  const uint64_t seed = static_cast<uint64_t>(a.number("seed", 0));
  const int threads = static_cast<int>(a.number("threads", 0));
  SIAM_CHECK(epochs > 0 && batch > 0 && hidden > 0 && lr > 0, "epochs, batch-size, hidden and lr must be positive");
  if (threads > 0) omp_set_num_threads(threads);
  manual_seed(seed);

  Tensor xtr = to_features(data::read_idx(data::idx_path(root, "train", false)), limit);
  Tensor ytr = data::read_idx(data::idx_path(root, "train", true)).narrow(0, 0, xtr.size(0)).to(DType::i64);
  Tensor xte = to_features(data::read_idx(data::idx_path(root, "test", false)), 0);
  Tensor yte = data::read_idx(data::idx_path(root, "test", true)).to(DType::i64);
  const int64_t n = xtr.size(0);
  const std::vector<int64_t> labels = ytr.to_vector<int64_t>();
  SIAM_CHECK(n >= batch, "only ", n, " training images for a batch of ", batch);
  std::printf("siam demo: MLP 784-%lld-%lld-10 on %s (%lld train, %lld test images), %d threads\n",
              static_cast<long long>(hidden), static_cast<long long>(hidden), root.c_str(), static_cast<long long>(n),
              static_cast<long long>(xte.size(0)), omp_get_max_threads());

  auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(784, hidden), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(hidden, hidden), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(hidden, 10)});
  optim::SGD opt(model->parameters(), {.lr = lr, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true});
  const int64_t steps_per_epoch = n / batch, total = steps_per_epoch * epochs;
  optim::WarmupCosineSchedule sched({.base = lr, .final_value = 0.0, .warmup_steps = steps_per_epoch / 4,
                                     .total_steps = total});

  int64_t step = 0;
  double last_loss = 0, last_ips = 0, test_top1 = 0;
  auto t_start = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    auto perm = permutation(n, seed, static_cast<uint64_t>(epoch));
    double loss_sum = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      std::vector<int64_t> ids(perm.begin() + s * batch, perm.begin() + (s + 1) * batch);
      Tensor idx = from_vector_i64(ids, {batch});
      std::vector<int64_t> yv(batch);
      for (int64_t i = 0; i < batch; ++i) yv[i] = labels[ids[i]];
      Tensor xb = index_select(xtr, 0, idx), yb = from_vector_i64(yv, {batch});
      sched.apply(opt, step);
      Tensor loss = cross_entropy((*model)(xb), yb);
      opt.zero_grad();
      loss.backward();
      opt.step();
      double l = loss.item();
      SIAM_CHECK(std::isfinite(l), "loss became ", l, " at step ", step);
      loss_sum += l;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    last_loss = loss_sum / static_cast<double>(steps_per_epoch);
    last_ips = static_cast<double>(steps_per_epoch * batch) / secs;
    test_top1 = accuracy(*model, xte, yte);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    double eta = elapsed / epoch * (epochs - epoch);
    std::printf("epoch %d/%d  step %lld  loss %.4f  lr %.4f  %.0f images/s  test top-1 %.2f%%  ETA %.0fs\n", epoch,
                epochs, static_cast<long long>(step), last_loss, sched.lr_at(step - 1), last_ips, 100 * test_top1, eta);
    std::fflush(stdout);
  }
  std::printf("{\"epoch\": %d, \"loss\": %.6f, \"test_top1\": %.4f, \"images_per_s\": %.1f}\n", epochs, last_loss,
              test_top1, last_ips);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  siam::ensure_fast_blas(argv);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  // Under mpirun every rank runs this program: the communicator comes up first (engine/dist/dist.h).
  struct DistScope {
    DistScope(int* c, char*** v) { siam::dist::init(c, v); }
    ~DistScope() { siam::dist::finalize(); }
  } dist_scope(&argc, &argv);
  try {
    if (cmd == "version") {
      std::printf("siam 0.1.0\nblas: %s\ncuda: %s\nmpi: %s\n", siam::blas_info().c_str(),
                  siam::cuda_available() ? "available" : "no device (or a CPU-only build)",
                  siam::dist::mpi_available() ? "yes" : "no (a build without MPI)");
      return 0;
    }
    if (cmd == "show-views") return siam::app::show_views(argc, argv);
    if (cmd == "info") return siam::app::info(argc, argv);
    if (cmd == "train") return siam::app::train(argc, argv);
    if (cmd == "eval") return siam::app::eval(argc, argv);
    if (cmd == "embed") return siam::app::embed(argc, argv);
    if (cmd == "demo")
      return demo(argc, argv);
    std::fprintf(stderr, "siam: unknown command '%s'\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const siam::Error& e) {
    std::fprintf(stderr, "siam %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}

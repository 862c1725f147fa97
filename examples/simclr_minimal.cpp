// SimCLR on Fashion-MNIST through siam's C++ API: what an embedding program writes when it does not use
// `siam train`. Build it against an installed siam (find_package(siam), see CMakeLists.txt here) and run
//   ./simclr_minimal [epochs (1)] [limit (all 60000 images)]
// It prints the loss every 20 steps and the kNN top-1 of the encoder after each epoch.
#include <cstdio>
#include <cstdlib>

#include "engine/core/blas.h"
#include "engine/core/random.h"
#include "engine/data/dataset.h"
#include "engine/data/loader.h"
#include "engine/data/views.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "methods/simclr.h"
#include "models/resnet.h"
#include "train/eval.h"

using namespace siam;

int main(int argc, char** argv) {
  ensure_fast_blas(argv);  // picks the right OpenBLAS kernels on CPUs it misdetects
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 1;
  const int64_t limit = argc > 2 ? std::atoll(argv[2]) : 0;
  try {
    // Data: Fashion-MNIST from the Debian package, and SimCLR's two views sized for 28x28 grayscale.
    auto train_set = std::make_shared<data::IdxDataset>(data::IdxOptions{.split = "train", .limit = limit});
    auto test_set = std::make_shared<data::IdxDataset>(data::IdxOptions{.split = "test", .limit = 2000});
    data::ViewSpec view;
    view.count = 2;
    view.height = view.width = 28;
    view.crop = {.scale_min = 0.2, .scale_max = 1.0};
    view.jitter = {.p = 0.8, .brightness = 0.4, .contrast = 0.4};
    view.mean = {0.2860f};
    view.std = {0.3530f};
    data::Loader loader(train_set, data::ViewPipeline({view}, 1), {.batch_size = 256, .seed = 0, .threads = 1});

    // Model: a CIFAR-stem ResNet-18 of width 16 on 1 channel, SimCLR's projector and NT-Xent loss.
    manual_seed(0);
    auto encoder = std::make_shared<models::ResNet>(
        models::ResNetConfig{.depth = 18, .width = 16, .stem = models::Stem::cifar, .in_channels = 1});
    methods::MethodOptions mo = methods::defaults_for("simclr");
    mo.temperature = 0.2;
    methods::SimCLR simclr(encoder, mo);

    std::vector<Tensor> params;
    for (auto& [name, p] : simclr.trainable_parameters()) params.push_back(p);
    optim::SGD sgd(params, {.lr = 0.3, .momentum = 0.9, .weight_decay = 5e-4});
    const int64_t steps = loader.batches_per_epoch() * epochs;
    optim::WarmupCosineSchedule sched(
        {.base = 0.3, .warmup_steps = loader.batches_per_epoch() / 2, .total_steps = steps});

    int64_t step = 0;
    for (int epoch = 0; epoch < epochs; ++epoch) {
      loader.start_epoch(epoch);
      data::Batch batch;
      while (loader.next(batch)) {
        sched.apply(sgd, step);
        Tensor loss = simclr.loss(batch.views, {.step = step, .total_steps = steps, .epoch = epoch}).loss;
        sgd.zero_grad();
        loss.backward();
        sgd.step();
        if (step % 20 == 0) std::printf("epoch %d step %lld loss %.4f\n", epoch + 1, (long long)step, loss.item());
        ++step;
      }
      // kNN monitor on pre-projector features of unaugmented images.
      data::ViewSpec plain = train::eval_view(view);
      auto ftr = train::extract_features(*encoder, train_set, plain, 512, 1);
      auto fte = train::extract_features(*encoder, test_set, plain, 512, 1);
      std::printf("epoch %d kNN top-1 %.4f\n", epoch + 1, train::knn_top1(ftr, fte, 10));
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "simclr_minimal: %s\n", e.what());
    return 1;
  }
  return 0;
}

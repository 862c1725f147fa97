// siam info --model NAME: parameter count and forward FLOPs of a model, as plain integers on their own lines
// ("parameters: N", "flops: N"), after a one-line description.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "apps/commands.h"
#include "apps/options.h"
#include "models/resnet.h"

namespace siam::app {

namespace {

const char* kInfoUsage =
    "usage: siam info --model resnet18|resnet34|resnet50|resnet101|resnet152 [--width W (64)]\n"
    "                 [--stem imagenet|cifar (imagenet)] [--in-ch C (3)] [--size S (224 imagenet, 32 cifar)]\n"
    "                 [--classes K (1000; 0: encoder only, no fc)]\n"
    "prints parameters (all trainable tensors) and flops: forward FLOPs for one S x S image, counting a\n"
    "multiply-add as 2 FLOPs in conv and linear layers (BN, ReLU, pooling and residual adds not counted).\n";


}  // namespace

int info(int argc, char** argv) {
  Options opt(argc, argv, 2, {"model", "width", "stem", "in-ch", "size", "classes"}, kInfoUsage);
  if (opt.help()) {
    std::fputs(kInfoUsage, stdout);
    return 0;
  }
  const std::string model_name = opt.required("model", "NAME");
  models::ResNetConfig cfg;
  cfg.depth = models::resnet_depth_from_name(model_name);
  cfg.width = opt.integer("width", 64);
  cfg.stem = models::stem_from_name(opt.str("stem", "imagenet"));
  cfg.in_channels = opt.integer("in-ch", 3);
  cfg.num_classes = opt.integer("classes", 1000);
  const int64_t size = opt.integer("size", cfg.stem == models::Stem::cifar ? 32 : 224);
  SIAM_CHECK(cfg.width > 0 && cfg.in_channels > 0 && size > 0, "--width, --in-ch and --size must be positive");
  // Parameters are counted on a model built under the engine's usual initialization (a ResNet-152 takes a
  // few seconds on the CPU).
  auto model = models::resnet(cfg);
  std::printf("model: %s width %lld, %s stem, %lld input channels, %lld classes, input %lldx%lld\n",
              model_name.c_str(), static_cast<long long>(cfg.width),
              cfg.stem == models::Stem::cifar ? "cifar" : "imagenet", static_cast<long long>(cfg.in_channels),
              static_cast<long long>(cfg.num_classes), static_cast<long long>(size), static_cast<long long>(size));
  std::printf("parameters: %lld\n", static_cast<long long>(model->num_parameters()));
  std::printf("flops: %lld\n", static_cast<long long>(model->forward_flops(size, size)));
  return 0;
}

}  // namespace siam::app

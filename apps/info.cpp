// siam info --model NAME: parameter count and forward FLOPs of a model, as plain integers on their own lines
// ("parameters: N", "flops: N"), after a one-line description.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "apps/commands.h"
#include "models/resnet.h"

namespace siam::app {

namespace {

const char* kInfoUsage =
    "usage: siam info --model resnet18|resnet34|resnet50|resnet101|resnet152 [--width W (64)]\n"
    "                 [--stem imagenet|cifar (imagenet)] [--in-ch C (3)] [--size S (224 imagenet, 32 cifar)]\n"
    "                 [--classes K (1000; 0: encoder only, no fc)]\n"
    "prints parameters (all trainable tensors) and flops: forward FLOPs for one S x S image, counting a\n"
    "multiply-add as 2 FLOPs in conv and linear layers (BN, ReLU, pooling and residual adds not counted).\n";

int64_t int_option(const std::map<std::string, std::string>& kv, const std::string& key, int64_t def) {
  auto it = kv.find(key);
  if (it == kv.end()) return def;
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  SIAM_CHECK(end && *end == '\0' && !it->second.empty() && v >= 0, "info: --", key, " '", it->second,
             "' is not a non-negative integer");
  return v;
}

}  // namespace

int info(int argc, char** argv) {
  std::map<std::string, std::string> kv;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      std::fputs(kInfoUsage, stdout);
      return 0;
    }
    SIAM_CHECK(s.rfind("--", 0) == 0, "info: unexpected argument '", s, "'\n", kInfoUsage);
    std::string key = s.substr(2), val;
    auto eq = key.find('=');
    if (eq != std::string::npos) {
      val = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      SIAM_CHECK(i + 1 < argc, "info: option --", key, " needs a value");
      val = argv[++i];
    }
    SIAM_CHECK(key == "model" || key == "width" || key == "stem" || key == "in-ch" || key == "size" || key == "classes",
               "info: unknown option --", key, "\n", kInfoUsage);
    kv[key] = val;
  }
  SIAM_CHECK(kv.count("model"), "info: --model is required\n", kInfoUsage);
  models::ResNetConfig cfg;
  cfg.depth = models::resnet_depth_from_name(kv["model"]);
  cfg.width = int_option(kv, "width", 64);
  cfg.stem = models::stem_from_name(kv.count("stem") ? kv["stem"] : "imagenet");
  cfg.in_channels = int_option(kv, "in-ch", 3);
  cfg.num_classes = int_option(kv, "classes", 1000);
  const int64_t size = int_option(kv, "size", cfg.stem == models::Stem::cifar ? 32 : 224);
  SIAM_CHECK(cfg.width > 0 && cfg.in_channels > 0 && size > 0, "info: --width, --in-ch and --size must be positive");
  // Parameters are counted on a model built under the engine's usual initialization (a ResNet-152 takes a
  // few seconds on the CPU).
  auto model = models::resnet(cfg);
  std::printf("model: %s width %lld, %s stem, %lld input channels, %lld classes, input %lldx%lld\n",
              kv["model"].c_str(), static_cast<long long>(cfg.width),
              cfg.stem == models::Stem::cifar ? "cifar" : "imagenet", static_cast<long long>(cfg.in_channels),
              static_cast<long long>(cfg.num_classes), static_cast<long long>(size), static_cast<long long>(size));
  std::printf("parameters: %lld\n", static_cast<long long>(model->num_parameters()));
  std::printf("flops: %lld\n", static_cast<long long>(model->forward_flops(size, size)));
  return 0;
}

}  // namespace siam::app

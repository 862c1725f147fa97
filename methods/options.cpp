// Per-method defaults and config keys. (methods/options.h)
#include "methods/options.h"

#include <algorithm>

#include "engine/core/error.h"

namespace siam::methods {

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = {"simclr",       "moco", "byol", "simsiam",
                                                 "barlow_twins", "wmse", "swav", "vicreg"};
  return names;
}

MethodOptions defaults_for(const std::string& name) {
  const auto& all = method_names();
  if (std::find(all.begin(), all.end(), name) == all.end()) {
    std::string list;
    for (auto& n : all) list += (list.empty() ? "" : ", ") + n;
    SIAM_FAIL("unknown method '", name, "' (known: ", list, ")");
  }
  MethodOptions o;
  o.name = name;
  // Heads are sized for the small encoders of 28x28 / 32x32 recipes (ResNet-18 width 16 -> 128 features);
  // the papers' ImageNet sizes are one --set away.
  if (name == "simclr") {
    o.projector = {.hidden = 512, .out = 128, .layers = 2};
    o.temperature = 0.2;
  } else if (name == "moco") {
    o.projector = {.hidden = 512, .out = 128, .layers = 2};
    o.temperature = 0.2;
    o.momentum = 0.99;
  } else if (name == "byol") {
    o.projector = {.hidden = 1024, .out = 128, .layers = 2};
    o.predictor = {.hidden = 1024, .out = 128, .layers = 2};
    o.momentum = 0.99;
    o.cosine_momentum = true;
    o.per_view_forward = true;
  } else if (name == "simsiam") {
    o.projector = {.hidden = 512, .out = 512, .layers = 3, .last_bn = true, .last_bn_affine = false, .bias = false};
    o.predictor = {.hidden = 128, .out = 512, .layers = 2, .bias = false};
    o.per_view_forward = true;
  } else if (name == "barlow_twins") {
    o.projector = {.hidden = 1024, .out = 1024, .layers = 3, .bias = false};
    o.lambda = 5e-3;
  } else if (name == "wmse") {
    o.projector = {.hidden = 1024, .out = 64, .layers = 2};
    o.whiten_size = 128;
    o.whiten_iters = 1;
    o.per_view_forward = true;
  } else if (name == "swav") {
    o.projector = {.hidden = 512, .out = 128, .layers = 2};
    o.temperature = 0.1;
    o.prototypes = 100;
    o.freeze_prototypes_steps = 100;
  } else if (name == "vicreg") {
    o.projector = {.hidden = 1024, .out = 1024, .layers = 3};
  }
  return o;
}

void check_batch_stats(const char* method, const MethodOptions& o) {
  SIAM_CHECK(o.batch_stats == "gather" || o.batch_stats == "all_reduce", method,
             ": method.batch_stats must be gather or all_reduce, got '", o.batch_stats, "'");
}

std::vector<std::string> keys_for(const std::string& name) {
  defaults_for(name);  // validates the name
  std::vector<std::string> k = {"name"};
  if (name != "moco") k.push_back("per_view_forward");  // MoCo's forward is its shuffle-BN groups
  auto head = [&](const std::string& h) {
    for (const char* f : {"hidden", "out", "layers", "hidden_bn", "last_bn", "last_bn_affine", "bias"})
      k.push_back(h + "." + f);
  };
  head("projector");
  if (name == "byol" || name == "simsiam") head("predictor");
  if (name == "simclr" || name == "moco" || name == "swav") k.push_back("temperature");
  if (name == "moco" || name == "byol") {
    k.push_back("momentum");
    k.push_back("cosine_momentum");
  }
  if (name == "moco") {
    k.push_back("queue_size");
    k.push_back("shuffle_bn_groups");
    k.push_back("symmetric");
  }
  if (name == "barlow_twins" || name == "vicreg" || name == "swav") k.push_back("batch_stats");
  if (name == "barlow_twins") k.push_back("lambda");
  if (name == "vicreg") {
    k.push_back("sim_weight");
    k.push_back("var_weight");
    k.push_back("cov_weight");
  }
  if (name == "wmse") {
    k.push_back("whiten_size");
    k.push_back("whiten_iters");
    k.push_back("whiten_eps");
  }
  if (name == "swav") {
    for (const char* f : {"prototypes", "sinkhorn_eps", "sinkhorn_iters", "freeze_prototypes_steps", "swav_queue",
                          "swav_queue_start_step"})
      k.push_back(f);
  }
  return k;
}

}  // namespace siam::methods

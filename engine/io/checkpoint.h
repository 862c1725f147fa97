// Model and training checkpoints in safetensors files.
//
// Model checkpoint: a module's state_dict() under torchvision's names (conv1.weight, layer1.0.bn1.running_mean,
// fc.weight, ...), so torchvision can load_state_dict() it and siam can load a torchvision checkpoint.
// load_state_dict() checks names, shapes and dtypes and reports every mismatch in one siam::Error (missing,
// unexpected, wrong shape, wrong dtype). Floating tensors convert between f32/f64/bf16/f16 on load; integer
// buffers (num_batches_tracked) must stay integer.
//
// Training checkpoint: one file, written atomically, holding
//   model.<name>   the model's state_dict          ema.<name>     an EMA/target network's state_dict
//   optim.<i>.<k>  Optimizer::named_state()        method.<name>  method state (queues, prototypes, centers)
//   rng            i64 [seed, offset] of a Generator (bit patterns of the u64 values)
// plus metadata {"format": "siam-train-1", "epoch": "<int>", "step": "<int>", ...caller's keys}.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/io/safetensors.h"
#include "engine/nn/module.h"

namespace siam::io {

struct LoadOptions {
  // Entries whose names start with one of these prefixes are ignored on both sides (e.g. {"fc."} to load a
  // classifier checkpoint into an encoder without a head, or the other way round).
  std::vector<std::string> ignore_prefixes{};
  // false: missing and unexpected names are allowed (shapes and dtypes of the common names are still checked).
  bool strict = true;
};

// Copies `state` into `module`'s parameters and buffers in place (the handles that optimizers hold stay valid).
// Checks everything first and changes nothing when it throws.
void load_state_dict(nn::Module& module, const NamedTensors& state, const LoadOptions& options = {},
                     const std::string& source = "state_dict");

// module.state_dict() to a safetensors file (floating tensors converted to `floating_dtype` when given).
void save_model(const std::string& path, const nn::Module& module, const Metadata& metadata = {},
                const SaveOptions& options = {});
void load_model(const std::string& path, nn::Module& module, const LoadOptions& options = {});

struct TrainingCheckpoint {
  NamedTensors model;      // module.state_dict()
  NamedTensors ema;        // target network's state_dict(), or empty
  NamedTensors optimizer;  // Optimizer::named_state(), or empty
  NamedTensors method;     // method state, or empty
  uint64_t rng_seed = 0, rng_offset = 0;
  int64_t epoch = 0, step = 0;
  Metadata metadata;  // extra string keys (config, method name, ...)

  void set_rng(const Generator& g) {
    rng_seed = g.seed();
    rng_offset = g.offset();
  }
  void restore_rng(Generator& g) const { g.set_state(rng_seed, rng_offset); }
};

// Writes everything into one file atomically (temporary file, fsync, rename): a crash leaves either the old
// file or the new one, never a torn one.
void save_training_checkpoint(const std::string& path, const TrainingCheckpoint& ckpt);
// Reads a file written by save_training_checkpoint (throws naming the file when it is not one).
TrainingCheckpoint load_training_checkpoint(const std::string& path);

}  // namespace siam::io

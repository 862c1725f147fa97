// The options of every method in one struct, so a config file, the command line (--set method.x=...) and the
// C++ API fill the same fields. defaults_for(name) gives a method's published defaults scaled for small
// images; keys_for(name) lists the keys that method reads (a config with another key under method: is an
// error naming it).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace siam::methods {

struct HeadOptions {
  int64_t hidden = 512;  // hidden width of the MLP
  int64_t out = 128;     // output dimension
  int layers = 2;        // Linear layers (1: a single Linear)
  bool hidden_bn = true;
  bool last_bn = false;  // a BatchNorm1d after the last Linear
  bool last_bn_affine = true;
  bool bias = true;  // bias of the hidden Linear layers (a following BN makes it redundant)
};

struct MethodOptions {
  std::string name = "simclr";  // simclr | moco | byol | simsiam | barlow_twins | wmse | swav | vicreg
  HeadOptions projector;
  HeadOptions predictor;  // byol, simsiam
  // Each view through the encoder and heads on its own, so batch norm normalizes each view with its own
  // statistics (the reference code of BYOL, SimSiam and W-MSE; their defaults). false: views of one size share
  // one forward (SimCLR's TensorFlow code, SwAV's multi-crop). With a stop-gradient this matters: a predictor
  // whose batch norm sees both views passes gradient to the "stopped" view through its statistics; and W-MSE,
  // which whitens each view on its own, degrades the encoder with shared statistics (docs/DECISIONS.md).
  bool per_view_forward = false;
  // contrastive (simclr, moco) and swav's softmax
  double temperature = 0.2;
  // momentum encoders (moco, byol): the EMA momentum at step 0; byol raises it to 1 on a cosine
  double momentum = 0.99;
  bool cosine_momentum = false;
  // moco
  int64_t queue_size = 4096;
  int shuffle_bn_groups = 2;  // one-process shuffle-BN: key batch split in groups, keys shuffled across them
  bool symmetric = true;      // both views as queries (MoCo v2 in solo-learn) or the first only
  // barlow_twins
  double lambda = 5e-3;
  // vicreg
  double sim_weight = 25, var_weight = 25, cov_weight = 1;
  // wmse
  int64_t whiten_size = 128;  // sub-batch (per view) that is whitened together
  int whiten_iters = 1;       // random splits per step
  double whiten_eps = 0;      // shrinkage added to the covariance
  // swav
  int64_t prototypes = 100;
  double sinkhorn_eps = 0.05;
  int sinkhorn_iters = 3;
  int64_t freeze_prototypes_steps = 0;  // prototypes get no update for the first steps
  int64_t swav_queue = 0;               // stored embeddings per global view that extend Sinkhorn's batch (0: off)
  int64_t swav_queue_start_step = 0;    // the queue joins from this step on
  // barlow_twins, vicreg, swav on several ranks: how the batch statistics see the global batch. "gather": every
  // rank gathers all rows (W B x D received, the statistics of W B rows computed on each); "all_reduce": each
  // rank sums its own rows and all-reduces the sums (engine/ops/batch_stat_hooks.h; SwAV: Sinkhorn's sums),
  // O(D^2) (SwAV: O(K)) per step. Same loss and gradients; all_reduce sends less once D < W B.
  std::string batch_stats = "gather";
  // Not a config key: the run's seed (train.seed), for the methods' own random draws (MoCo's shuffle,
  // W-MSE's sub-batches), keyed by (seed, step) so a resumed run draws the same.
  uint64_t seed = 0;
};

MethodOptions defaults_for(const std::string& name);
// Keys of `method:` a config may set for this method (dotted for the heads: projector.hidden, ...).
std::vector<std::string> keys_for(const std::string& name);
// siam::Error naming the method unless o.batch_stats is "gather" or "all_reduce".
void check_batch_stats(const char* method, const MethodOptions& o);
// All method names, in the order of the documentation.
const std::vector<std::string>& method_names();

}  // namespace siam::methods

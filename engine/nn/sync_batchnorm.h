// Batch norm with statistics over the whole global batch (every rank's rows), as torch.nn.SyncBatchNorm.
//
// sync_batch_norm (training only): x (N_r, C), (N_r, C, L) or (N_r, C, H, W) on rank r; N_r may differ by rank.
//   Forward: per rank, count n_r = N_r L, per-channel mean_r and M2_r = sum (x - mean_r)^2 (two passes, in f64);
//   one all_gather of (n_r, mean_r, M2_r) (2C + 1 doubles) and Chan's merge in rank order:
//     n = sum n_r;  mean = sum n_r mean_r / n;  var = sum (M2_r + n_r (mean_r - mean)^2) / n  (biased);
//   y = (x - mean) * invstd * w + b, invstd = 1 / sqrt(var + eps). Running statistics as batch_norm, with the
//   global mean and the global unbiased variance var * n / (n - 1), identical on every rank.
//   Backward (xhat = (x - mean) invstd; gy the incoming gradient on this rank):
//     one all_reduce (sum) of the per-channel (sum gy, sum gy xhat) (2C doubles) -> (g_b, g_w);
//     gx = w invstd (gy - g_b / n - xhat g_w / n)  (the gradient of every rank's loss summed: the convention of
//     engine/dist/dist.h); gw = sum over THIS rank's rows of gy xhat, gb = sum gy (DDP averages them).
//   Cost per call: two small collectives (2C + 1 and 2C doubles per rank).
// nn::SyncBatchNorm: an nn::BatchNorm (same parameters, buffers and state_dict names: weight, bias,
//   running_mean, running_var, num_batches_tracked) whose training forward uses sync_batch_norm over its
//   communicator (dist::world() at call time unless one is given). With world size 1, and in eval mode, it runs
//   exactly BatchNorm's forward, so single-process results are bitwise those of BatchNorm.
// Any BatchNorm1d/2d can do the same: nn::convert_sync_batchnorm(model) (engine/nn/batchnorm.h) switches every
// BatchNorm of a model to these statistics in place, so models keep their typed children and names.
#pragma once
#include "engine/dist/dist.h"
#include "engine/nn/batchnorm.h"

namespace siam {

Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, double momentum, double eps, dist::Communicator& comm);

namespace nn {

class SyncBatchNorm : public BatchNorm {
 public:
  explicit SyncBatchNorm(int64_t num_features, BatchNormOptions options = {}, dist::Communicator* comm = nullptr)
      : BatchNorm("SyncBatchNorm", num_features, options) {
    set_sync(true, comm);
  }

 protected:
  void check_input(const Tensor& x) const override;
};

}  // namespace nn
}  // namespace siam

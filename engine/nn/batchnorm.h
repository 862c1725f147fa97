// nn::BatchNorm1d / BatchNorm2d, as torch.nn: weight 1 and bias 0 (affine), buffers running_mean 0,
// running_var 1 and num_batches_tracked (i64 scalar) when track_running_stats.
// Training: normalizes with batch statistics and updates the running ones (factor `momentum`, or the
// cumulative average 1 / num_batches_tracked when momentum is nullopt). Eval: uses the running statistics,
// or batch statistics when there are none (track_running_stats = false).
#pragma once
#include <optional>

#include "engine/nn/module.h"

namespace siam::dist {
class Communicator;
}

namespace siam::nn {

struct BatchNormOptions {
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
};

class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  void reset_running_stats();
  void reset_parameters();  // running stats, and weight 1 / bias 0
  std::string extra_repr() const override;

  int64_t num_features() const { return c_; }
  const BatchNormOptions& options() const { return opt_; }
  const Tensor& weight() const { return weight_ ? *weight_ : none(); }
  const Tensor& bias() const { return bias_ ? *bias_ : none(); }
  const Tensor& running_mean() const { return running_mean_ ? *running_mean_ : none(); }
  const Tensor& running_var() const { return running_var_ ? *running_var_ : none(); }
  const Tensor& num_batches_tracked() const { return num_batches_ ? *num_batches_ : none(); }

  // Synchronized statistics (engine/nn/sync_batchnorm.h): in training, with more than one rank, the mean and
  // variance are those of the global batch over `comm` (dist::world() at call time when null), with the
  // matching backward. With one rank, or in eval, nothing changes (bitwise). convert_sync_batchnorm() turns it
  // on for every BatchNorm of a model.
  void set_sync(bool on, dist::Communicator* comm = nullptr) {
    sync_ = on;
    sync_comm_ = comm;
  }
  bool is_sync() const { return sync_; }

 protected:
  BatchNorm(const char* type_name, int64_t num_features, BatchNormOptions options);
  virtual void check_input(const Tensor& x) const = 0;

 private:
  int64_t c_;
  BatchNormOptions opt_;
  Tensor* weight_ = nullptr;
  Tensor* bias_ = nullptr;
  Tensor* running_mean_ = nullptr;
  Tensor* running_var_ = nullptr;
  Tensor* num_batches_ = nullptr;
  bool sync_ = false;
  dist::Communicator* sync_comm_ = nullptr;
};

// set_sync(true, comm) on every BatchNorm in `m` (recursively); returns how many it changed.
int convert_sync_batchnorm(Module& m, dist::Communicator* comm = nullptr);

// Over (N, C) or (N, C, L).
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, BatchNormOptions options = {})
      : BatchNorm("BatchNorm1d", num_features, options) {}

 protected:
  void check_input(const Tensor& x) const override;
};

// Over (N, C, H, W).
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, BatchNormOptions options = {})
      : BatchNorm("BatchNorm2d", num_features, options) {}

 protected:
  void check_input(const Tensor& x) const override;
};

}  // namespace siam::nn

#include "engine/nn/batchnorm.h"

#include "engine/dist/dist.h"
#include "engine/nn/init.h"
#include "engine/nn/sync_batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/norm.h"

namespace siam::nn {

BatchNorm::BatchNorm(const char* type_name, int64_t num_features, BatchNormOptions options)
    : Module(type_name), c_(num_features), opt_(options) {
  SIAM_CHECK(c_ > 0, type_name, ": num_features must be positive, got ", c_);
  SIAM_CHECK(opt_.eps > 0, type_name, ": eps must be positive, got ", opt_.eps);
  SIAM_CHECK(!opt_.momentum || (*opt_.momentum >= 0 && *opt_.momentum <= 1), type_name,
             ": momentum must be in [0, 1], got ", opt_.momentum.value_or(0));
  if (opt_.affine) {
    weight_ = &register_parameter("weight", ones({c_}));
    bias_ = &register_parameter("bias", zeros({c_}));
  }
  if (opt_.track_running_stats) {
    running_mean_ = &register_buffer("running_mean", zeros({c_}));
    running_var_ = &register_buffer("running_var", ones({c_}));
    num_batches_ = &register_buffer("num_batches_tracked", zeros({}, DType::i64));
  }
}

void BatchNorm::reset_running_stats() {
  if (!opt_.track_running_stats) return;
  init::zeros_(*running_mean_);
  init::ones_(*running_var_);
  NoGradGuard ng;
  num_batches_->zero_();
}

void BatchNorm::reset_parameters() {
  reset_running_stats();
  if (opt_.affine) {
    init::ones_(*weight_);
    init::zeros_(*bias_);
  }
}

Tensor BatchNorm::forward(const Tensor& x) {
  check_input(x);
  SIAM_CHECK(x.size(1) == c_, type_name(), "(", c_, "): input of shape ", shape_str(x.shape()), " has ", x.size(1),
             " channels, expected ", c_);
  double factor = opt_.momentum.value_or(0.0);
  if (is_training() && opt_.track_running_stats) {
    NoGradGuard ng;
    if (opt_.momentum && num_batches_->is_cuda()) {
      // Counted on the device: reading it would make the host wait for the GPU at every batch-norm layer.
      num_batches_->copy_(add(num_batches_->to(DType::f64), 1.0));  // exact to 2^53
    } else {
      int64_t n = static_cast<int64_t>(num_batches_->item()) + 1;
      num_batches_->fill_(static_cast<double>(n));
      if (!opt_.momentum) factor = 1.0 / static_cast<double>(n);
    }
  }
  if (sync_ && is_training()) {
    dist::Communicator& comm = sync_comm_ ? *sync_comm_ : dist::world();
    if (comm.world_size() > 1)
      return sync_batch_norm(x, running_mean(), running_var(), weight(), bias(), factor, opt_.eps, comm);
  }
  // Batch statistics in training, and in eval when there are no running statistics.
  bool use_batch_stats = is_training() || !opt_.track_running_stats;
  return batch_norm(x, running_mean(), running_var(), weight(), bias(), use_batch_stats, factor, opt_.eps);
}

std::string BatchNorm::extra_repr() const {
  return detail::str_cat(c_, ", eps=", opt_.eps, ", momentum=", opt_.momentum ? std::to_string(*opt_.momentum) : "none",
                         ", affine=", opt_.affine ? "true" : "false",
                         ", track_running_stats=", opt_.track_running_stats ? "true" : "false");
}

void BatchNorm1d::check_input(const Tensor& x) const {
  SIAM_CHECK(x.dim() == 2 || x.dim() == 3, "BatchNorm1d(", num_features(), "): expects input (N, C) or (N, C, L), got ",
             shape_str(x.shape()));
}

void BatchNorm2d::check_input(const Tensor& x) const {
  SIAM_CHECK(x.dim() == 4, "BatchNorm2d(", num_features(), "): expects input (N, C, H, W), got ", shape_str(x.shape()));
}

int convert_sync_batchnorm(Module& m, dist::Communicator* comm) {
  int n = 0;
  for (auto& [name, mod] : m.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm*>(mod)) {
      bn->set_sync(true, comm);
      ++n;
    }
  return n;
}

}  // namespace siam::nn

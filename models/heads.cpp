#include "models/heads.h"

#include <cmath>

#include "engine/nn/activation.h"
#include "engine/nn/batchnorm.h"
#include "engine/nn/init.h"
#include "engine/nn/linear.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"

namespace siam::models {

MLP::MLP(const MLPConfig& config) : cfg_(config) {
  SIAM_CHECK(cfg_.layers >= 1, "MLP: layers must be >= 1, got ", cfg_.layers);
  SIAM_CHECK(cfg_.in_dim > 0 && cfg_.out_dim > 0 && (cfg_.layers == 1 || cfg_.hidden_dim > 0),
             "MLP: dims must be positive, got in ", cfg_.in_dim, ", hidden ", cfg_.hidden_dim, ", out ", cfg_.out_dim);
  int64_t in = cfg_.in_dim;
  for (int l = 0; l + 1 < cfg_.layers; ++l) {
    push_back(std::make_shared<nn::Linear>(in, cfg_.hidden_dim, cfg_.hidden_bias));
    if (cfg_.hidden_bn) push_back(std::make_shared<nn::BatchNorm1d>(cfg_.hidden_dim));
    push_back(std::make_shared<nn::ReLU>());
    in = cfg_.hidden_dim;
  }
  push_back(std::make_shared<nn::Linear>(in, cfg_.out_dim, cfg_.last_bias));
  if (cfg_.last_bn)
    push_back(std::make_shared<nn::BatchNorm1d>(cfg_.out_dim, nn::BatchNormOptions{.affine = cfg_.last_bn_affine}));
}

int64_t MLP::forward_flops() const {
  int64_t f = 0;
  for (const auto& c : children())
    if (auto* l = dynamic_cast<const nn::Linear*>(c.get())) f += 2 * l->in_features() * l->out_features();
  return f;
}

Prototypes::Prototypes(int64_t dim, int64_t num_prototypes) : Module("Prototypes"), dim_(dim), k_(num_prototypes) {
  SIAM_CHECK(dim > 0 && num_prototypes > 0, "Prototypes: dim and num_prototypes must be positive, got ", dim, " and ",
             num_prototypes);
  weight_ = &register_parameter("weight", empty({k_, dim_}));
  nn::init::kaiming_uniform_(*weight_, std::sqrt(5.0));  // nn.Linear's default, as SwAV's nn.Linear(bias=False)
}

Tensor Prototypes::forward(const Tensor& z) {
  SIAM_CHECK(z.dim() == 2 && z.size(1) == dim_, "Prototypes(", dim_, " -> ", k_, "): expects (N, ", dim_, "), got ",
             shape_str(z.shape()));
  return linear(z, *weight_);
}

void Prototypes::normalize_() {
  NoGradGuard ng;
  Tensor n = normalize(weight_->detach(), 1);
  weight_->copy_(n);
}

std::string Prototypes::extra_repr() const { return detail::str_cat("dim=", dim_, ", num_prototypes=", k_); }

std::shared_ptr<MLP> mlp(const MLPConfig& config) { return std::make_shared<MLP>(config); }

}  // namespace siam::models

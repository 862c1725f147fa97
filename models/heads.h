// Heads that sit on an encoder's features: the projector and predictor MLPs of siamese methods and SwAV's
// prototype layer.
//
// MLP: `layers` Linear layers; each hidden one is followed by BatchNorm1d (when hidden_bn) and ReLU; the
// output may get a BatchNorm1d too (SimCLR v2, Barlow Twins, SimSiam's projector; affine or not). Children are
// numbered as in an nn.Sequential ("0" Linear, "1" BN, "2" ReLU, ...), so state_dict() names match the
// PyTorch reference implementations that build their heads with nn.Sequential.
//   BYOL projector/predictor: {in, 4096, 256, layers 2}
//   SimSiam projector: {in, 2048, 2048, layers 3, hidden_bias false, last_bias false, last_bn, affine false}
//   SimSiam predictor: {2048, 512, 2048, layers 2, hidden_bias false}
//   Barlow Twins: {in, 8192, 8192, layers 3, hidden_bias false, last_bias false, last_bn, affine false}
//
// Prototypes: a bias-free linear map onto K prototype vectors (K, D) whose rows normalize_() scales to unit
// length (SwAV normalizes them before every step); forward(z) = z W^T, the scores of normalized z.
#pragma once
#include <cstdint>
#include <memory>

#include "engine/nn/module.h"
#include "engine/nn/sequential.h"

namespace siam::models {

struct MLPConfig {
  int64_t in_dim = 0, hidden_dim = 0, out_dim = 0;
  int layers = 2;  // Linear layers, >= 1 (1: a single Linear, no hidden layer)
  bool hidden_bn = true;
  bool hidden_bias = true;
  bool last_bias = true;
  bool last_bn = false;
  bool last_bn_affine = true;
};

class MLP : public nn::Sequential {
 public:
  explicit MLP(const MLPConfig& config);
  const MLPConfig& config() const { return cfg_; }
  // x (N, in_dim) -> (N, out_dim)
  int64_t forward_flops() const;  // per sample: 2 * multiply-adds of the Linear layers

 private:
  MLPConfig cfg_;
};

class Prototypes : public nn::Module {
 public:
  Prototypes(int64_t dim, int64_t num_prototypes);
  // z (N, dim) -> scores (N, num_prototypes)
  Tensor forward(const Tensor& z) override;
  // Scales each prototype (row of weight) to unit L2 norm, in place and outside autograd.
  void normalize_();
  const Tensor& weight() const { return *weight_; }  // (num_prototypes, dim)
  std::string extra_repr() const override;

 private:
  int64_t dim_, k_;
  Tensor* weight_ = nullptr;
};

std::shared_ptr<MLP> mlp(const MLPConfig& config);

}  // namespace siam::models

// ResNet encoders as torchvision.models.resnet (v1.5: the stride sits on the 3x3 conv of a Bottleneck), with
// torchvision's module names, so state_dict() keys match resnet18().state_dict() and checkpoints move both
// ways (engine/io/checkpoint.h).
//
//   depth 18, 34: BasicBlock (expansion 1)     depth 50, 101, 152: Bottleneck (expansion 4)
//   stem imagenet: conv1 7x7 stride 2 pad 3, bn1, relu, maxpool 3x3 stride 2 pad 1
//   stem cifar:    conv1 3x3 stride 1 pad 1, bn1, relu, maxpool = Identity (same names, no parameters)
//   width w: stage widths w, 2w, 4w, 8w (torchvision: w = 64); features = 8w * expansion
//   num_classes 0: no fc; forward returns the pooled features (N, 8w * expansion). Otherwise fc gives logits.
//
// Initialization as torchvision: convs kaiming_normal_(fan_out, relu), BN weight 1 and bias 0, fc with
// nn.Linear's default; zero_init_residual sets the last BN gamma of each block to 0 (bn2 / bn3).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "engine/nn/batchnorm.h"
#include "engine/nn/conv.h"
#include "engine/nn/linear.h"
#include "engine/nn/module.h"
#include "engine/nn/sequential.h"

namespace siam::models {

enum class Stem { imagenet, cifar };

struct ResNetConfig {
  int depth = 50;  // 18, 34, 50, 101, 152
  int64_t width = 64;
  Stem stem = Stem::imagenet;
  int64_t in_channels = 3;
  int64_t num_classes = 0;  // 0: encoder only (pooled features)
  bool zero_init_residual = false;
};

// Parses "resnet18" ... "resnet152" (throws siam::Error listing the known names).
int resnet_depth_from_name(const std::string& name);
Stem stem_from_name(const std::string& name);  // "imagenet" | "cifar"

// Forward FLOPs: 2 per multiply-add of conv and linear layers; BN, ReLU, pooling and residual adds are not
// counted (the usual convention: torchvision's ResNet-50 at 224x224 is 4.09 G multiply-adds = 8.18 GFLOPs).
class FlopCounter {
 public:
  virtual ~FlopCounter() = default;
  // FLOPs for one image of (H, W); writes the output size.
  virtual int64_t forward_flops(int64_t h, int64_t w, int64_t& oh, int64_t& ow) const = 0;
};

class BasicBlock : public nn::Module, public FlopCounter {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride);
  Tensor forward(const Tensor& x) override;
  int64_t forward_flops(int64_t h, int64_t w, int64_t& oh, int64_t& ow) const override;
  nn::BatchNorm2d& last_bn() { return *bn2_; }

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<nn::Sequential> downsample_;  // conv 1x1 + BN, or null
};

class Bottleneck : public nn::Module, public FlopCounter {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride);
  Tensor forward(const Tensor& x) override;
  int64_t forward_flops(int64_t h, int64_t w, int64_t& oh, int64_t& ow) const override;
  nn::BatchNorm2d& last_bn() { return *bn3_; }

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<nn::BatchNorm2d> bn1_, bn2_, bn3_;
  std::shared_ptr<nn::Sequential> downsample_;
};

class ResNet : public nn::Module {
 public:
  explicit ResNet(const ResNetConfig& config);
  // x (N, in_channels, H, W) -> features (N, feature_dim()) or logits (N, num_classes)
  Tensor forward(const Tensor& x) override;
  // Pooled features (before fc), whatever num_classes is.
  Tensor features(const Tensor& x);
  int64_t feature_dim() const { return feature_dim_; }
  const ResNetConfig& config() const { return cfg_; }
  // Forward FLOPs for one image of size (h, w) (see FlopCounter for the convention).
  int64_t forward_flops(int64_t h, int64_t w) const;
  std::string extra_repr() const override;

 private:
  ResNetConfig cfg_;
  int64_t feature_dim_ = 0;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm2d> bn1_;
  std::shared_ptr<nn::Module> maxpool_;
  std::shared_ptr<nn::Sequential> layers_[4];
  std::shared_ptr<nn::Linear> fc_;
};

std::shared_ptr<ResNet> resnet(const ResNetConfig& config);
inline std::shared_ptr<ResNet> resnet18(ResNetConfig c = {}) {
  c.depth = 18;
  return resnet(c);
}
inline std::shared_ptr<ResNet> resnet34(ResNetConfig c = {}) {
  c.depth = 34;
  return resnet(c);
}
inline std::shared_ptr<ResNet> resnet50(ResNetConfig c = {}) {
  c.depth = 50;
  return resnet(c);
}
inline std::shared_ptr<ResNet> resnet101(ResNetConfig c = {}) {
  c.depth = 101;
  return resnet(c);
}

}  // namespace siam::models

#include "models/resnet.h"

#include "engine/nn/activation.h"
#include "engine/nn/init.h"
#include "engine/nn/pool.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/pool.h"

namespace siam::models {

namespace {

std::shared_ptr<nn::Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<nn::Conv2d>(in, out, 3, nn::Conv2dOptions{.stride = stride, .padding = 1, .bias = false});
}
std::shared_ptr<nn::Conv2d> conv1x1(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<nn::Conv2d>(in, out, 1, nn::Conv2dOptions{.stride = stride, .bias = false});
}

// 2 * multiply-adds of one conv for one image; updates (h, w) to the output size.
int64_t conv_flops(const nn::Conv2d& c, int64_t& h, int64_t& w) {
  const auto& o = c.options();
  auto k = c.kernel_size();
  int64_t oh = (h + 2 * o.padding.h - o.dilation.h * (k.h - 1) - 1) / o.stride.h + 1;
  int64_t ow = (w + 2 * o.padding.w - o.dilation.w * (k.w - 1) - 1) / o.stride.w + 1;
  h = oh;
  w = ow;
  return 2 * oh * ow * c.out_channels() * (c.in_channels() / o.groups) * k.h * k.w;
}

std::shared_ptr<nn::Sequential> make_downsample(int64_t in, int64_t out, int64_t stride) {
  if (stride == 1 && in == out) return nullptr;
  auto ds = std::make_shared<nn::Sequential>();
  ds->push_back(conv1x1(in, out, stride));
  ds->push_back(std::make_shared<nn::BatchNorm2d>(out));
  return ds;
}

int64_t downsample_flops(const std::shared_ptr<nn::Sequential>& ds, int64_t h, int64_t w) {
  if (!ds) return 0;
  return conv_flops(static_cast<const nn::Conv2d&>((*ds)[0]), h, w);
}

}  // namespace

int resnet_depth_from_name(const std::string& name) {
  for (int d : {18, 34, 50, 101, 152})
    if (name == "resnet" + std::to_string(d)) return d;
  SIAM_FAIL("unknown model '", name, "' (known: resnet18, resnet34, resnet50, resnet101, resnet152)");
}

Stem stem_from_name(const std::string& name) {
  if (name == "imagenet") return Stem::imagenet;
  if (name == "cifar") return Stem::cifar;
  SIAM_FAIL("unknown stem '", name, "' (known: imagenet, cifar)");
}

// ---- BasicBlock -----------------------------------------------------------------------------------------

BasicBlock::BasicBlock(int64_t inplanes, int64_t planes, int64_t stride) : Module("BasicBlock") {
  conv1_ = register_module("conv1", conv3x3(inplanes, planes, stride));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  register_module("relu", std::make_shared<nn::ReLU>());
  conv2_ = register_module("conv2", conv3x3(planes, planes, 1));
  bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  downsample_ = make_downsample(inplanes, planes * kExpansion, stride);
  if (downsample_) register_module("downsample", downsample_);
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu(bn1_->forward(conv1_->forward(x)));  // (N, planes, H/s, W/s)
  out = bn2_->forward(conv2_->forward(out));
  Tensor identity = downsample_ ? downsample_->forward(x) : x;
  return relu(add(out, identity));
}

int64_t BasicBlock::forward_flops(int64_t h, int64_t w, int64_t& oh, int64_t& ow) const {
  int64_t f = downsample_flops(downsample_, h, w);
  f += conv_flops(*conv1_, h, w);
  f += conv_flops(*conv2_, h, w);
  oh = h;
  ow = w;
  return f;
}

// ---- Bottleneck -----------------------------------------------------------------------------------------

Bottleneck::Bottleneck(int64_t inplanes, int64_t planes, int64_t stride) : Module("Bottleneck") {
  conv1_ = register_module("conv1", conv1x1(inplanes, planes, 1));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  conv2_ = register_module("conv2", conv3x3(planes, planes, stride));
  bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  conv3_ = register_module("conv3", conv1x1(planes, planes * kExpansion, 1));
  bn3_ = register_module("bn3", std::make_shared<nn::BatchNorm2d>(planes * kExpansion));
  register_module("relu", std::make_shared<nn::ReLU>());
  downsample_ = make_downsample(inplanes, planes * kExpansion, stride);
  if (downsample_) register_module("downsample", downsample_);
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = relu(bn1_->forward(conv1_->forward(x)));  // (N, planes, H, W)
  out = relu(bn2_->forward(conv2_->forward(out)));       // (N, planes, H/s, W/s)
  out = bn3_->forward(conv3_->forward(out));             // (N, 4 planes, H/s, W/s)
  Tensor identity = downsample_ ? downsample_->forward(x) : x;
  return relu(add(out, identity));
}

int64_t Bottleneck::forward_flops(int64_t h, int64_t w, int64_t& oh, int64_t& ow) const {
  int64_t f = downsample_flops(downsample_, h, w);
  f += conv_flops(*conv1_, h, w);
  f += conv_flops(*conv2_, h, w);
  f += conv_flops(*conv3_, h, w);
  oh = h;
  ow = w;
  return f;
}

// ---- ResNet ---------------------------------------------------------------------------------------------

ResNet::ResNet(const ResNetConfig& config) : Module("ResNet"), cfg_(config) {
  int blocks[4];
  bool bottleneck = cfg_.depth >= 50;
  switch (cfg_.depth) {
    case 18: blocks[0] = 2, blocks[1] = 2, blocks[2] = 2, blocks[3] = 2; break;
    case 34: blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3; break;
    case 50: blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3; break;
    case 101: blocks[0] = 3, blocks[1] = 4, blocks[2] = 23, blocks[3] = 3; break;
    case 152: blocks[0] = 3, blocks[1] = 8, blocks[2] = 36, blocks[3] = 3; break;
    default: SIAM_FAIL("ResNet: depth must be 18, 34, 50, 101 or 152, got ", cfg_.depth);
  }
  SIAM_CHECK(cfg_.width > 0, "ResNet: width must be positive, got ", cfg_.width);
  SIAM_CHECK(cfg_.in_channels > 0, "ResNet: in_channels must be positive, got ", cfg_.in_channels);
  SIAM_CHECK(cfg_.num_classes >= 0, "ResNet: num_classes must be >= 0, got ", cfg_.num_classes);
  const int64_t w = cfg_.width;
  if (cfg_.stem == Stem::imagenet) {
    conv1_ = register_module("conv1",
                             std::make_shared<nn::Conv2d>(cfg_.in_channels, w, 7,
                                                          nn::Conv2dOptions{.stride = 2, .padding = 3, .bias = false}));
  } else {
    conv1_ = register_module("conv1", conv3x3(cfg_.in_channels, w, 1));
  }
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(w));
  register_module("relu", std::make_shared<nn::ReLU>());
  if (cfg_.stem == Stem::imagenet)
    maxpool_ = register_module("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));
  else
    maxpool_ = register_module("maxpool", std::make_shared<nn::Identity>());

  const int64_t expansion = bottleneck ? Bottleneck::kExpansion : BasicBlock::kExpansion;
  int64_t inplanes = w;
  for (int s = 0; s < 4; ++s) {
    auto layer = std::make_shared<nn::Sequential>();
    int64_t planes = w << s;
    for (int b = 0; b < blocks[s]; ++b) {
      int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      if (bottleneck)
        layer->push_back(std::make_shared<Bottleneck>(inplanes, planes, stride));
      else
        layer->push_back(std::make_shared<BasicBlock>(inplanes, planes, stride));
      inplanes = planes * expansion;
    }
    layers_[s] = register_module("layer" + std::to_string(s + 1), layer);
  }
  feature_dim_ = inplanes;
  register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
  if (cfg_.num_classes > 0) fc_ = register_module("fc", std::make_shared<nn::Linear>(feature_dim_, cfg_.num_classes));

  // torchvision's initialization (fc keeps nn.Linear's default).
  for (auto& [name, m] : named_modules()) {
    if (auto* c = dynamic_cast<nn::Conv2d*>(m)) {
      nn::init::kaiming_normal_(c->weight(), 0.0, nn::init::FanMode::fan_out, nn::init::Nonlinearity::relu);
    } else if (auto* bn = dynamic_cast<nn::BatchNorm*>(m)) {
      nn::init::ones_(bn->weight());
      nn::init::zeros_(bn->bias());
    }
  }
  if (cfg_.zero_init_residual) {
    for (auto& [name, m] : named_modules()) {
      if (auto* b = dynamic_cast<BasicBlock*>(m)) nn::init::zeros_(b->last_bn().weight());
      if (auto* b = dynamic_cast<Bottleneck*>(m)) nn::init::zeros_(b->last_bn().weight());
    }
  }
}

Tensor ResNet::features(const Tensor& x) {
  SIAM_CHECK(x.dim() == 4 && x.size(1) == cfg_.in_channels, "ResNet: expects input (N, ", cfg_.in_channels,
             ", H, W), got ", shape_str(x.shape()));
  Tensor y = relu(bn1_->forward(conv1_->forward(x)));  // (N, w, H', W')
  y = maxpool_->forward(y);
  for (auto& layer : layers_) y = layer->forward(y);  // (N, 8w * expansion, H/32 or H/8, ...)
  return adaptive_avg_pool2d(y, {1, 1}).flatten(1);   // (N, feature_dim)
}

Tensor ResNet::forward(const Tensor& x) {
  Tensor f = features(x);
  return fc_ ? fc_->forward(f) : f;
}

int64_t ResNet::forward_flops(int64_t h, int64_t w) const {
  SIAM_CHECK(h > 0 && w > 0, "ResNet::forward_flops: input size must be positive, got ", h, "x", w);
  int64_t f = conv_flops(*conv1_, h, w);
  if (cfg_.stem == Stem::imagenet) {
    h = (h + 2 - 3) / 2 + 1;
    w = (w + 2 - 3) / 2 + 1;
  }
  for (const auto& layer : layers_)
    for (const auto& block : layer->children()) {
      int64_t oh, ow;
      f += dynamic_cast<const FlopCounter&>(*block).forward_flops(h, w, oh, ow);
      h = oh;
      w = ow;
    }
  if (fc_) f += 2 * fc_->in_features() * fc_->out_features();
  return f;
}

std::string ResNet::extra_repr() const {
  return detail::str_cat("depth=", cfg_.depth, ", width=", cfg_.width,
                         ", stem=", cfg_.stem == Stem::imagenet ? "imagenet" : "cifar",
                         ", in_channels=", cfg_.in_channels, ", num_classes=", cfg_.num_classes);
}

std::shared_ptr<ResNet> resnet(const ResNetConfig& config) { return std::make_shared<ResNet>(config); }

}  // namespace siam::models

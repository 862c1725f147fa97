#include "engine/nn/pool.h"

namespace siam::nn {

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding, bool ceil_mode) : Module("MaxPool2d") {
  p_.kernel = {kernel_size, kernel_size};
  p_.stride = {stride, stride};
  p_.padding = {padding, padding};
  p_.ceil_mode = ceil_mode;
  SIAM_CHECK(kernel_size > 0 && stride >= 0 && padding >= 0, "MaxPool2d: kernel_size must be positive and stride, ",
             "padding >= 0, got kernel_size=", kernel_size, " stride=", stride, " padding=", padding);
}

MaxPool2d::MaxPool2d(const Pool2dParams& params) : Module("MaxPool2d"), p_(params) {}

Tensor MaxPool2d::forward(const Tensor& x) {
  SIAM_CHECK(x.dim() == 4, "MaxPool2d: expects input (N, C, H, W), got ", shape_str(x.shape()));
  return max_pool2d(x, p_);
}

std::string MaxPool2d::extra_repr() const {
  int64_t sh = p_.stride[0] ? p_.stride[0] : p_.kernel[0], sw = p_.stride[1] ? p_.stride[1] : p_.kernel[1];
  return detail::str_cat("kernel_size=(", p_.kernel[0], ", ", p_.kernel[1], "), stride=(", sh, ", ", sw, "), padding=(",
                         p_.padding[0], ", ", p_.padding[1], ")", p_.ceil_mode ? ", ceil_mode" : "");
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(std::array<int64_t, 2> output_size)
    : Module("AdaptiveAvgPool2d"), out_(output_size) {
  SIAM_CHECK(out_[0] > 0 && out_[1] > 0, "AdaptiveAvgPool2d: output size must be positive, got (", out_[0], ", ",
             out_[1], ")");
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  SIAM_CHECK(x.dim() == 4, "AdaptiveAvgPool2d: expects input (N, C, H, W), got ", shape_str(x.shape()));
  return adaptive_avg_pool2d(x, out_);
}

std::string AdaptiveAvgPool2d::extra_repr() const {
  return detail::str_cat("output_size=(", out_[0], ", ", out_[1], ")");
}

}  // namespace siam::nn

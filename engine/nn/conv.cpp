#include "engine/nn/conv.h"

#include <cmath>

#include "engine/nn/init.h"

namespace siam::nn {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Conv2dOptions options)
    : Module("Conv2d"), in_(in_channels), out_(out_channels), kernel_(kernel_size), opt_(options) {
  SIAM_CHECK(in_ > 0 && out_ > 0, "Conv2d: in_channels and out_channels must be positive, got ", in_, " and ", out_);
  SIAM_CHECK(kernel_.h > 0 && kernel_.w > 0, "Conv2d: kernel_size must be positive, got (", kernel_.h, ", ", kernel_.w,
             ")");
  SIAM_CHECK(opt_.stride.h > 0 && opt_.stride.w > 0, "Conv2d: stride must be positive, got (", opt_.stride.h, ", ",
             opt_.stride.w, ")");
  SIAM_CHECK(opt_.padding.h >= 0 && opt_.padding.w >= 0, "Conv2d: padding must be >= 0, got (", opt_.padding.h, ", ",
             opt_.padding.w, ")");
  SIAM_CHECK(opt_.dilation.h > 0 && opt_.dilation.w > 0, "Conv2d: dilation must be positive, got (", opt_.dilation.h,
             ", ", opt_.dilation.w, ")");
  SIAM_CHECK(opt_.groups > 0 && in_ % opt_.groups == 0 && out_ % opt_.groups == 0, "Conv2d: groups = ", opt_.groups,
             " must divide in_channels = ", in_, " and out_channels = ", out_);
  weight_ = &register_parameter("weight", empty({out_, in_ / opt_.groups, kernel_.h, kernel_.w}));
  if (opt_.bias) bias_ = &register_parameter("bias", empty({out_}));
  reset_parameters();
}

void Conv2d::reset_parameters() {
  init::kaiming_uniform_(*weight_, std::sqrt(5.0));  // U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  if (bias_) {
    auto [fan_in, fan_out] = init::calculate_fan_in_and_fan_out(*weight_);
    double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    init::uniform_(*bias_, -bound, bound);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  SIAM_CHECK(x.dim() == 4 && x.size(1) == in_, "Conv2d(", in_, " -> ", out_, "): expects input (N, ", in_,
             ", H, W), got ", shape_str(x.shape()));
  Conv2dParams p;
  p.stride = {opt_.stride.h, opt_.stride.w};
  p.padding = {opt_.padding.h, opt_.padding.w};
  p.dilation = {opt_.dilation.h, opt_.dilation.w};
  p.groups = opt_.groups;
  return conv2d(x, *weight_, bias(), p);
}

std::string Conv2d::extra_repr() const {
  auto pair = [](Size2 s) { return detail::str_cat("(", s.h, ", ", s.w, ")"); };
  std::string s = detail::str_cat(in_, ", ", out_, ", kernel_size=", pair(kernel_), ", stride=", pair(opt_.stride));
  if (!(opt_.padding == Size2(0))) s += ", padding=" + pair(opt_.padding);
  if (!(opt_.dilation == Size2(1))) s += ", dilation=" + pair(opt_.dilation);
  if (opt_.groups != 1) s += detail::str_cat(", groups=", opt_.groups);
  if (!opt_.bias) s += ", bias=false";
  return s;
}

}  // namespace siam::nn

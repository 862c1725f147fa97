// 2-D convolution, NCHW, weights (C_out, C_in / groups, kH, kW), as torch.nn.functional.conv2d.
#pragma once
#include <array>

#include "engine/tensor.h"

namespace siam {

struct Conv2dParams {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};

// x (N, C_in, H, W), w (C_out, C_in/groups, kH, kW), b (C_out) or undefined -> (N, C_out, H_out, W_out).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), const Conv2dParams& p = {});

}  // namespace siam

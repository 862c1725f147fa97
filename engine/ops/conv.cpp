// Front-end of conv2d: validate, dispatch, record backward. f32 runs through oneDNN when siam is built with it
// (kernels/cpu/conv2d_onednn; except strided 1x1 and single-channel-input convs, see conv2d_onednn_preferred),
// otherwise, and for f64 (gradient checks), through kernels/cpu/conv2d (im2col + GEMM). docs/DECISIONS.md has
// the why.
#include "engine/ops/conv.h"

#include <type_traits>

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_onednn.h"

namespace siam {

namespace {

std::string params_str(const Conv2dParams& p) {
  return detail::str_cat("stride=(", p.stride[0], ",", p.stride[1], ") padding=(", p.padding[0], ",", p.padding[1],
                         ") dilation=(", p.dilation[0], ",", p.dilation[1], ") groups=", p.groups);
}

kernels::cpu::Conv2dGeom conv_geom(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  const char* op = "conv2d";
  SIAM_CHECK(x.defined() && w.defined(), op, ": input and weight must be defined");
  ops::require_cpu(op, {x, w, b});
  ops::require_floating(op, x);
  ops::require_same_dtype(op, x, w);
  if (b.defined()) ops::require_same_dtype(op, x, b);
  SIAM_CHECK(x.dim() == 4, op, ": input must be 4-D (N, C, H, W), got ", shape_str(x.shape()), " (weight ",
             shape_str(w.shape()), ")");
  SIAM_CHECK(w.dim() == 4, op, ": weight must be 4-D (C_out, C_in/groups, kH, kW), got ", shape_str(w.shape()),
             " (input ", shape_str(x.shape()), ")");
  for (int i = 0; i < 2; ++i) {
    SIAM_CHECK(p.stride[i] >= 1 && p.dilation[i] >= 1 && p.padding[i] >= 0, op,
               ": stride and dilation must be >= 1 and padding >= 0, got ", params_str(p));
  }
  SIAM_CHECK(p.groups >= 1, op, ": groups must be >= 1, got ", params_str(p));
  kernels::cpu::Conv2dGeom g;
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.K = w.size(0), g.R = w.size(2), g.S = w.size(3);
  g.sh = p.stride[0], g.sw = p.stride[1], g.ph = p.padding[0], g.pw = p.padding[1];
  g.dh = p.dilation[0], g.dw = p.dilation[1], g.groups = p.groups;
  SIAM_CHECK(g.C % g.groups == 0 && g.K % g.groups == 0, op, ": groups=", g.groups,
             " must divide both input channels and output channels; input ", shape_str(x.shape()), ", weight ",
             shape_str(w.shape()));
  SIAM_CHECK(w.size(1) * g.groups == g.C, op, ": weight ", shape_str(w.shape()), " expects ", w.size(1) * g.groups,
             " input channels (C_in/groups=", w.size(1), ", groups=", g.groups, ") but input ", shape_str(x.shape()),
             " has ", g.C);
  SIAM_CHECK(g.K >= 1 && g.R >= 1 && g.S >= 1, op, ": empty weight ", shape_str(w.shape()));
  if (b.defined())
    SIAM_CHECK(b.dim() == 1 && b.size(0) == g.K, op, ": bias must have shape [", g.K, "] for weight ",
               shape_str(w.shape()), ", got ", shape_str(b.shape()));
  const int64_t eh = g.H + 2 * g.ph - g.dh * (g.R - 1) - 1, ew = g.W + 2 * g.pw - g.dw * (g.S - 1) - 1;
  SIAM_CHECK(eh >= 0 && ew >= 0, op, ": kernel ", g.R, "x", g.S, " (", params_str(p),
             ") is larger than the padded input ", shape_str(x.shape()), " (weight ", shape_str(w.shape()), ")");
  g.OH = eh / g.sh + 1;
  g.OW = ew / g.sw + 1;
  return g;
}

template <class T> void forward(const kernels::cpu::Conv2dGeom& g, const T* x, const T* w, const T* b, T* y) {
#ifdef SIAM_WITH_ONEDNN
  if constexpr (std::is_same_v<T, float>) {
    if (kernels::cpu::conv2d_onednn_preferred(g)) return kernels::cpu::conv2d_forward_onednn(g, x, w, b, y);
  }
#endif
  kernels::cpu::conv2d_forward<T>(g, x, w, b, y);
}

template <class T>
void backward(const kernels::cpu::Conv2dGeom& g, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb) {
#ifdef SIAM_WITH_ONEDNN
  if constexpr (std::is_same_v<T, float>) {
    if (kernels::cpu::conv2d_onednn_preferred(g)) return kernels::cpu::conv2d_backward_onednn(g, x, w, gy, gx, gw, gb);
  }
#endif
  kernels::cpu::conv2d_backward<T>(g, x, w, gy, gx, gw, gb);
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  const auto g = conv_geom(x, w, b, p);
  Tensor xc = x.detach().contiguous(), wc = w.detach().contiguous();
  Tensor bc = b.defined() ? b.detach().contiguous() : Tensor();
  Tensor y = empty({g.N, g.K, g.OH, g.OW}, x.options());
  SIAM_DISPATCH_FLOAT(x.dtype(), "conv2d",
                      forward<scalar_t>(g, xc.data<scalar_t>(), wc.data<scalar_t>(),
                                        bc.defined() ? bc.data<scalar_t>() : nullptr, y.data<scalar_t>()));
  if (autograd::needs_grad({x, w, b})) {
    // Backward needs x only for the weight gradient and w only for the input gradient.
    Tensor xs = w.requires_grad() ? xc : Tensor();
    Tensor ws = x.requires_grad() ? wc : Tensor();
    autograd::record("conv2d", y, {x, w, b}, [g, xs, ws](const Tensor& gy, const std::vector<bool>& needs) {
      Tensor gyc = gy.contiguous();
      const bool ngx = needs[0], ngw = needs.size() > 1 && needs[1], ngb = needs.size() > 2 && needs[2];
      Tensor gx, gw, gb;
      if (ngx) gx = empty({g.N, g.C, g.H, g.W}, gyc.options());
      if (ngw) gw = empty({g.K, g.C / g.groups, g.R, g.S}, gyc.options());
      if (ngb) gb = empty({g.K}, gyc.options());
      SIAM_DISPATCH_FLOAT(
          gyc.dtype(), "conv2d",
          backward<scalar_t>(g, ngw ? xs.data<scalar_t>() : nullptr, ngx ? ws.data<scalar_t>() : nullptr,
                             gyc.data<scalar_t>(), ngx ? gx.data<scalar_t>() : nullptr,
                             ngw ? gw.data<scalar_t>() : nullptr, ngb ? gb.data<scalar_t>() : nullptr));
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return y;
}

}  // namespace siam

// Front-end of conv2d: validate, dispatch, record backward. f32 runs through oneDNN when siam is built with it
// (kernels/cpu/conv2d_onednn; except strided 1x1 and single-channel-input convs, see conv2d_onednn_preferred),
// otherwise, and for f64 (gradient checks), through kernels/cpu/conv2d (im2col + GEMM). docs/DECISIONS.md has
// the why. CUDA tensors (f32, f64, bf16) go to cuDNN (kernels/cuda/cudnn_conv.h); inside an AutocastGuard the
// f32 input and weight are cast to bf16, the result is f32 with the bias added in f32 while widening, and the
// backward returns f32 gradients (engine/core/autocast.h).
#include "engine/ops/conv.h"

#include <type_traits>

#include "engine/autograd/node.h"
#include "engine/core/autocast.h"
#include "engine/ops/dispatch.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_onednn.h"
#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/autocast.h"
#include "kernels/cuda/cudnn_conv.h"
#endif

namespace siam {

namespace {

std::string params_str(const Conv2dParams& p) {
  return detail::str_cat("stride=(", p.stride[0], ",", p.stride[1], ") padding=(", p.padding[0], ",", p.padding[1],
                         ") dilation=(", p.dilation[0], ",", p.dilation[1], ") groups=", p.groups);
}

kernels::cpu::Conv2dGeom conv_geom(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  const char* op = "conv2d";
  SIAM_CHECK(x.defined() && w.defined(), op, ": input and weight must be defined");
  ops::require_same_device(op, x, w);
  if (b.defined()) ops::require_same_device(op, x, b);
  if (x.is_cuda() && ops::kCudaBuild)
    SIAM_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64 || x.dtype() == DType::bf16, op,
               ": expects an f32, f64 or bf16 CUDA tensor, got ", dtype_name(x.dtype()), " input ", shape_str(x.shape()));
  else
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

#if defined(SIAM_WITH_CUDA)
kernels::cuda::DenseType dense_type(DType t) {
  return t == DType::f64 ? kernels::cuda::DenseType::f64
                         : t == DType::bf16 ? kernels::cuda::DenseType::bf16 : kernels::cuda::DenseType::f32;
}

// t as a contiguous tensor of dtype dt (itself when it already is one).
Tensor contiguous_as(const Tensor& t, DType dt) {
  if (t.is_contiguous() && t.dtype() == dt) return t.detach();
  return detail::cuda_cast_contiguous(t, dt, "conv2d");
}

Tensor conv2d_cuda(const Tensor& x, const Tensor& w, const Tensor& b, const kernels::cpu::Conv2dGeom& g) {
  namespace kc = kernels::cuda;
  const bool autocast = detail::autocast_applies(x) && detail::autocast_applies(w);
  const DType out_dt = x.dtype(), cdt = autocast ? autocast_dtype() : out_dt;  // result, compute dtypes
  const int dev = x.device().index;
  const bool tf32 = cuda::allow_tf32();
  Tensor xc = contiguous_as(x, cdt), wc = contiguous_as(w, cdt);
  Tensor bc = b.defined() ? contiguous_as(b, out_dt) : Tensor();  // added in the result dtype
  Tensor y = empty({g.N, g.K, g.OH, g.OW}, x.options());
  {
    detail::DeviceScratch scratch(x.device());
    if (autocast) {
      Tensor y16 = empty(y.shape(), y.options().with_dtype(cdt));
      kc::conv2d_forward(g, dense_type(cdt), tf32, dev, xc.raw_data(), wc.raw_data(), nullptr, y16.raw_data(),
                         scratch.fn());
      kc::widen_bias_bf16_nchw(dev, y16.raw_data(), bc.defined() ? bc.data<float>() : nullptr, y.data<float>(), g.N,
                               g.K, g.OH * g.OW);
    } else {
      kc::conv2d_forward(g, dense_type(cdt), tf32, dev, xc.raw_data(), wc.raw_data(),
                         bc.defined() ? bc.raw_data() : nullptr, y.raw_data(), scratch.fn());
    }
  }
  if (autograd::needs_grad({x, w, b})) {
    // Backward needs x only for the weight gradient and w only for the input gradient (in the compute dtype).
    Tensor xs = w.requires_grad() ? xc : Tensor();
    Tensor ws = x.requires_grad() ? wc : Tensor();
    autograd::record("conv2d", y, {x, w, b},
                     [g, xs, ws, autocast, out_dt, cdt, dev, tf32](const Tensor& gy, const std::vector<bool>& needs) {
                       const bool ngx = needs[0], ngw = needs.size() > 1 && needs[1], ngb = needs.size() > 2 && needs[2];
                       Tensor gyc = contiguous_as(gy, cdt);
                       Tensor gx, gw, gb;
                       detail::DeviceScratch scratch(gy.device());
                       if (ngx) {
                         gx = empty({g.N, g.C, g.H, g.W}, gy.options().with_dtype(cdt));
                         kc::conv2d_backward_data(g, dense_type(cdt), tf32, dev, ws.raw_data(), gyc.raw_data(),
                                                  gx.raw_data(), scratch.fn());
                         if (autocast) gx = detail::cuda_cast_contiguous(gx, out_dt, "conv2d");
                       }
                       if (ngw) {
                         gw = empty({g.K, g.C / g.groups, g.R, g.S}, gy.options().with_dtype(cdt));
                         kc::conv2d_backward_filter(g, dense_type(cdt), tf32, dev, xs.raw_data(), gyc.raw_data(),
                                                    gw.raw_data(), scratch.fn());
                         if (autocast) gw = detail::cuda_cast_contiguous(gw, out_dt, "conv2d");
                       }
                       if (ngb) {  // from the gradient in the result dtype (f32 under autocast)
                         Tensor gyo = autocast ? contiguous_as(gy, out_dt) : gyc;
                         gb = empty({g.K}, gy.options().with_dtype(out_dt));
                         kc::conv2d_backward_bias(g, dense_type(out_dt), dev, gyo.raw_data(), dense_type(out_dt),
                                                  gb.raw_data());
                       }
                       return std::vector<Tensor>{gx, gw, gb};
                     });
  }
  return y;
}
#endif

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  const auto g = conv_geom(x, w, b, p);
#if defined(SIAM_WITH_CUDA)
  if (x.is_cuda()) return conv2d_cuda(x, w, b, g);
#endif
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

// Front-ends of the pooling ops: validate, dispatch to kernels/cpu/pool (CPU) or kernels/cuda/cudnn_norm_pool
// (CUDA: f32, f64, bf16), record backward. Inputs (N, C, H, W) or (C, H, W) are treated as P = N*C planes.
#include "engine/ops/pool.h"

#include "engine/autograd/node.h"
#include "engine/core/autocast.h"
#include "engine/ops/dispatch.h"
#include "kernels/cpu/pool.h"
#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/cudnn_norm_pool.h"
#endif

namespace siam {

namespace {

using kernels::cpu::Pool2dGeom;

void check_input(const char* op, const Tensor& x) {
  SIAM_CHECK(x.defined(), op, ": input is undefined");
  if (x.is_cuda() && ops::kCudaBuild)
    SIAM_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64 || x.dtype() == DType::bf16, op,
               ": expects an f32, f64 or bf16 CUDA tensor, got ", dtype_name(x.dtype()), " ", shape_str(x.shape()));
  else
    ops::require_floating(op, x);
  SIAM_CHECK(x.dim() == 3 || x.dim() == 4, op, ": input must be (N, C, H, W) or (C, H, W), got ", shape_str(x.shape()));
  SIAM_CHECK(x.size(-1) > 0 && x.size(-2) > 0, op, ": input has an empty spatial dim, ", shape_str(x.shape()));
}

int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t pad, bool ceil_mode) {
  int64_t num = in + 2 * pad - (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + pad) --out;
  return out;
}

Pool2dGeom pool_geom(const char* op, const Tensor& x, const Pool2dParams& p) {
  check_input(op, x);
  Pool2dGeom g;
  g.H = x.size(-2), g.W = x.size(-1);
  g.P = x.numel() / (g.H * g.W);
  g.kh = p.kernel[0], g.kw = p.kernel[1];
  g.sh = p.stride[0] == 0 ? g.kh : p.stride[0];
  g.sw = p.stride[1] == 0 ? g.kw : p.stride[1];
  g.ph = p.padding[0], g.pw = p.padding[1];
  g.count_include_pad = p.count_include_pad;
  auto params = [&] {
    return detail::str_cat("kernel=(", g.kh, ",", g.kw, ") stride=(", g.sh, ",", g.sw, ") padding=(", g.ph, ",", g.pw,
                           ")");
  };
  SIAM_CHECK(g.kh >= 1 && g.kw >= 1 && g.sh >= 1 && g.sw >= 1 && g.ph >= 0 && g.pw >= 0, op,
             ": kernel and stride must be >= 1 and padding >= 0, got ", params(), " for input ", shape_str(x.shape()));
  SIAM_CHECK(g.ph <= g.kh / 2 && g.pw <= g.kw / 2, op, ": padding must be at most half the kernel size, got ", params(),
             " for input ", shape_str(x.shape()));
  g.OH = pool_out(g.H, g.kh, g.sh, g.ph, p.ceil_mode);
  g.OW = pool_out(g.W, g.kw, g.sw, g.pw, p.ceil_mode);
  SIAM_CHECK(g.OH >= 1 && g.OW >= 1, op, ": output would be empty (", g.OH, "x", g.OW, ") for input ",
             shape_str(x.shape()), " with ", params());
  return g;
}

Shape out_shape(const Tensor& x, int64_t OH, int64_t OW) {
  Shape s = x.shape();
  s[s.size() - 2] = OH;
  s[s.size() - 1] = OW;
  return s;
}

#if defined(SIAM_WITH_CUDA)
kernels::cuda::DenseType dense_type(DType t) {
  return t == DType::f64 ? kernels::cuda::DenseType::f64
                         : t == DType::bf16 ? kernels::cuda::DenseType::bf16 : kernels::cuda::DenseType::f32;
}
Tensor contiguous_cuda(const Tensor& t, const char* op) {
  if (t.is_contiguous()) return t.detach();
  return detail::cuda_cast_contiguous(t, t.dtype(), op);
}

enum class PoolKind { max, avg, adaptive };

// The three pools on CUDA: forward, and a backward closure that keeps only what it needs (max: the indices).
Tensor pool_cuda(PoolKind kind, const char* op, const Tensor& x, const Pool2dGeom& g) {
  namespace kc = kernels::cuda;
  const int dev = x.device().index;
  const kc::DenseType t = dense_type(x.dtype());
  Tensor xc = contiguous_cuda(x, op);
  Tensor y = empty(out_shape(x, g.OH, g.OW), x.options());
  Tensor idx;
  switch (kind) {
    case PoolKind::max:
      idx = empty(y.shape(), TensorOptions(DType::i64, x.device()));
      kc::max_pool2d_forward(g, t, dev, xc.raw_data(), y.raw_data(), idx.data<int64_t>());
      break;
    case PoolKind::avg: kc::avg_pool2d_forward(g, t, dev, xc.raw_data(), y.raw_data()); break;
    case PoolKind::adaptive: kc::adaptive_avg_pool2d_forward(g, t, dev, xc.raw_data(), y.raw_data()); break;
  }
  if (autograd::needs_grad({x})) {
    autograd::record(op, y, {x}, [kind, op, g, idx, t, dev, xs = x.shape()](const Tensor& gy, const std::vector<bool>&) {
      Tensor gyc = contiguous_cuda(gy, op);
      Tensor gx = empty(xs, gyc.options());
      switch (kind) {
        case PoolKind::max: kc::max_pool2d_backward(g, t, dev, gyc.raw_data(), idx.data<int64_t>(), gx.raw_data()); break;
        case PoolKind::avg: kc::avg_pool2d_backward(g, t, dev, gyc.raw_data(), gx.raw_data()); break;
        case PoolKind::adaptive: kc::adaptive_avg_pool2d_backward(g, t, dev, gyc.raw_data(), gx.raw_data()); break;
      }
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}
#endif

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p) {
  const Pool2dGeom g = pool_geom("max_pool2d", x, p);
#if defined(SIAM_WITH_CUDA)
  if (x.is_cuda()) return pool_cuda(PoolKind::max, "max_pool2d", x, g);
#endif
  Tensor xc = x.detach().contiguous();
  Tensor y = empty(out_shape(x, g.OH, g.OW), x.options());
  Tensor idx = empty(y.shape(), DType::i64);
  SIAM_DISPATCH_FLOAT(
      x.dtype(), "max_pool2d",
      kernels::cpu::max_pool2d_forward<scalar_t>(g, xc.data<scalar_t>(), y.data<scalar_t>(), idx.data<int64_t>()));
  if (autograd::needs_grad({x})) {
    Shape xs = x.shape();
    autograd::record("max_pool2d", y, {x}, [g, idx, xs](const Tensor& gy, const std::vector<bool>&) {
      Tensor gyc = gy.contiguous();
      Tensor gx = empty(xs, gyc.options());
      SIAM_DISPATCH_FLOAT(gyc.dtype(), "max_pool2d",
                          kernels::cpu::max_pool2d_backward<scalar_t>(g, gyc.data<scalar_t>(), idx.data<int64_t>(),
                                                                      gx.data<scalar_t>()));
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p) {
  const Pool2dGeom g = pool_geom("avg_pool2d", x, p);
#if defined(SIAM_WITH_CUDA)
  if (x.is_cuda()) return pool_cuda(PoolKind::avg, "avg_pool2d", x, g);
#endif
  Tensor xc = x.detach().contiguous();
  Tensor y = empty(out_shape(x, g.OH, g.OW), x.options());
  SIAM_DISPATCH_FLOAT(x.dtype(), "avg_pool2d",
                      kernels::cpu::avg_pool2d_forward<scalar_t>(g, xc.data<scalar_t>(), y.data<scalar_t>()));
  if (autograd::needs_grad({x})) {
    Shape xs = x.shape();
    autograd::record("avg_pool2d", y, {x}, [g, xs](const Tensor& gy, const std::vector<bool>&) {
      Tensor gyc = gy.contiguous();
      Tensor gx = empty(xs, gyc.options());
      SIAM_DISPATCH_FLOAT(gyc.dtype(), "avg_pool2d",
                          kernels::cpu::avg_pool2d_backward<scalar_t>(g, gyc.data<scalar_t>(), gx.data<scalar_t>()));
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size) {
  const char* op = "adaptive_avg_pool2d";
  check_input(op, x);
  SIAM_CHECK(output_size[0] >= 1 && output_size[1] >= 1, op, ": output size must be >= 1, got (", output_size[0], ",",
             output_size[1], ") for input ", shape_str(x.shape()));
  Pool2dGeom g;
  g.H = x.size(-2), g.W = x.size(-1);
  g.P = x.numel() / (g.H * g.W);
  g.OH = output_size[0], g.OW = output_size[1];
#if defined(SIAM_WITH_CUDA)
  if (x.is_cuda()) return pool_cuda(PoolKind::adaptive, op, x, g);
#endif
  Tensor xc = x.detach().contiguous();
  Tensor y = empty(out_shape(x, g.OH, g.OW), x.options());
  SIAM_DISPATCH_FLOAT(x.dtype(), op,
                      kernels::cpu::adaptive_avg_pool2d_forward<scalar_t>(g, xc.data<scalar_t>(), y.data<scalar_t>()));
  if (autograd::needs_grad({x})) {
    Shape xs = x.shape();
    autograd::record(op, y, {x}, [g, xs, op](const Tensor& gy, const std::vector<bool>&) {
      Tensor gyc = gy.contiguous();
      Tensor gx = empty(xs, gyc.options());
      SIAM_DISPATCH_FLOAT(
          gyc.dtype(), op,
          kernels::cpu::adaptive_avg_pool2d_backward<scalar_t>(g, gyc.data<scalar_t>(), gx.data<scalar_t>()));
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

}  // namespace siam

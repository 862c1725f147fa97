// Front-ends of the elementwise ops: validate, dispatch on the device to kernels/cpu/elementwise or
// kernels/cuda/elementwise, record backward (device-agnostic: the closures call front-ends or dispatch too).
#include "engine/ops/elementwise.h"

#include <limits>

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/stream.h"

namespace siam {

using kernels::cpu::BinaryOp;
using kernels::cpu::CompareOp;
using kernels::cpu::UnaryOp;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SIAM_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
               " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  SIAM_CHECK(lead >= 0, "sum_to: cannot reduce shape ", shape_str(g.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < g.dim(); ++i) {
    if (i < lead)
      dims.push_back(i);
    else if (shape[i - lead] == 1 && g.shape()[i] != 1)
      dims.push_back(i);
  }
  Tensor r = dims.empty() ? g : sum(g, dims, /*keepdim=*/true);
  return r.reshape(shape);
}

namespace {

Tensor binary_raw(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  ops::require_same_device(name, a, b);
  ops::require_same_dtype(name, a, b);
  ops::require_floating(name, a);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor ea = a.detach().expand(out_shape), eb = b.detach().expand(out_shape);
  Tensor out = empty(out_shape, a.options());
  if (a.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(a.device().index);
                   kernels::cuda::binary(op, a.dtype(), static_cast<int>(out.dim()), out_shape.data(), ea.raw_data(),
                                         ea.strides().data(), eb.raw_data(), eb.strides().data(), out.raw_data()));
    return out;
  }
  SIAM_DISPATCH_FLOAT(a.dtype(), name,
                      kernels::cpu::binary<scalar_t>(op, static_cast<int>(out.dim()), out_shape.data(),
                                                     ea.data<scalar_t>(), ea.strides().data(), eb.data<scalar_t>(),
                                                     eb.strides().data(), out.data<scalar_t>()));
  return out;
}

Tensor unary_raw(UnaryOp op, const char* name, const Tensor& x, double p0 = 0, double p1 = 0) {
  ops::require_floating(name, x);
  Tensor xc = x.detach().contiguous();
  Tensor y = empty(x.shape(), x.options());
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   kernels::cuda::unary(op, x.dtype(), x.numel(), xc.raw_data(), y.raw_data(), p0, p1));
    return y;
  }
  SIAM_DISPATCH_FLOAT(x.dtype(), name,
                      kernels::cpu::unary<scalar_t>(op, x.numel(), xc.data<scalar_t>(), y.data<scalar_t>(), p0, p1));
  return y;
}

// y = f(x): forward, and backward through the kernel's derivative.
Tensor unary_op(UnaryOp op, const char* name, const Tensor& x, double p0 = 0, double p1 = 0) {
  Tensor y = unary_raw(op, name, x, p0, p1);
  if (autograd::needs_grad({x})) {
    Tensor xs = x.detach().contiguous(), ys = y.detach();
    autograd::record(name, y, {x}, [op, name, xs, ys, p0, p1](const Tensor& g, const std::vector<bool>&) {
      Tensor gc = g.contiguous();
      Tensor gx = empty(xs.shape(), xs.options());
      if (xs.is_cuda()) {
        SIAM_CUDA_ONLY(cuda::DeviceGuard dg(xs.device().index);
                       kernels::cuda::unary_backward(op, xs.dtype(), xs.numel(), gc.raw_data(), xs.raw_data(),
                                                     ys.raw_data(), gx.raw_data(), p0, p1));
        return std::vector<Tensor>{gx};
      }
      SIAM_DISPATCH_FLOAT(xs.dtype(), name,
                          kernels::cpu::unary_backward<scalar_t>(op, xs.numel(), gc.data<scalar_t>(),
                                                                 xs.data<scalar_t>(), ys.data<scalar_t>(),
                                                                 gx.data<scalar_t>(), p0, p1));
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor compare_op(CompareOp op, const char* name, const Tensor& a, const Tensor& b) {
  ops::require_same_device(name, a, b);
  ops::require_same_dtype(name, a, b);
  ops::require_floating(name, a);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor ea = a.detach().expand(out_shape), eb = b.detach().expand(out_shape);
  Tensor out = empty(out_shape, TensorOptions(DType::u8, a.device()));
  if (a.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(a.device().index);
                   kernels::cuda::compare(op, a.dtype(), static_cast<int>(out.dim()), out_shape.data(), ea.raw_data(),
                                          ea.strides().data(), eb.raw_data(), eb.strides().data(),
                                          out.data<uint8_t>()));
    return out;
  }
  SIAM_DISPATCH_FLOAT(a.dtype(), name,
                      kernels::cpu::compare<scalar_t>(op, static_cast<int>(out.dim()), out_shape.data(),
                                                      ea.data<scalar_t>(), ea.strides().data(), eb.data<scalar_t>(),
                                                      eb.strides().data(), out.data<uint8_t>()));
  return out;
}

Tensor scalar_like(double s, const Tensor& t) { return full({}, s, t.options()); }

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::add, "add", a, b);
  if (autograd::needs_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("add", out, {a, b}, [sa, sb](const Tensor& g, const std::vector<bool>& need) {
      return std::vector<Tensor>{need[0] ? sum_to(g, sa) : Tensor(), need[1] ? sum_to(g, sb) : Tensor()};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::sub, "sub", a, b);
  if (autograd::needs_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("sub", out, {a, b}, [sa, sb](const Tensor& g, const std::vector<bool>& need) {
      return std::vector<Tensor>{need[0] ? sum_to(g, sa) : Tensor(), need[1] ? sum_to(neg(g), sb) : Tensor()};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::mul, "mul", a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor ad = a.detach(), bd = b.detach();
    autograd::record("mul", out, {a, b}, [ad, bd](const Tensor& g, const std::vector<bool>& need) {
      return std::vector<Tensor>{need[0] ? sum_to(mul(g, bd), ad.shape()) : Tensor(),
                                 need[1] ? sum_to(mul(g, ad), bd.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::div, "div", a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor bd = b.detach(), od = out.detach();
    Shape sa = a.shape();
    autograd::record("div", out, {a, b}, [bd, od, sa](const Tensor& g, const std::vector<bool>& need) {
      Tensor gb_ = div(g, bd);
      return std::vector<Tensor>{need[0] ? sum_to(gb_, sa) : Tensor(),
                                 need[1] ? sum_to(neg(mul(gb_, od)), bd.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::pow, "pow", a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor ad = a.detach(), bd = b.detach(), od = out.detach();
    autograd::record("pow", out, {a, b}, [ad, bd, od](const Tensor& g, const std::vector<bool>& need) {
      Tensor ga, gb;
      if (need[0]) ga = sum_to(mul(g, mul(bd, pow(ad, sub(bd, scalar_like(1.0, bd))))), ad.shape());
      if (need[1]) gb = sum_to(mul(g, mul(od, log(ad))), bd.shape());
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}

namespace {
Tensor minmax(BinaryOp op, CompareOp pick_a, const char* name, const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(op, name, a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor ad = a.detach(), bd = b.detach();
    autograd::record(name, out, {a, b}, [ad, bd, pick_a, name](const Tensor& g, const std::vector<bool>& need) {
      // Ties send the gradient to a.
      Tensor mask = compare_op(pick_a, name, ad, bd);
      Tensor zero = zeros({}, g.options());
      return std::vector<Tensor>{need[0] ? sum_to(where(mask, g, zero), ad.shape()) : Tensor(),
                                 need[1] ? sum_to(where(mask, zero, g), bd.shape()) : Tensor()};
    });
  }
  return out;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return minmax(BinaryOp::maximum, CompareOp::ge, "maximum", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return minmax(BinaryOp::minimum, CompareOp::le, "minimum", a, b); }

Tensor add(const Tensor& a, double s) { return unary_op(UnaryOp::add_scalar, "add_scalar", a, s); }
Tensor sub(const Tensor& a, double s) { return unary_op(UnaryOp::add_scalar, "add_scalar", a, -s); }
Tensor rsub(double s, const Tensor& a) { return unary_op(UnaryOp::rsub_scalar, "rsub_scalar", a, s); }
Tensor mul(const Tensor& a, double s) { return unary_op(UnaryOp::mul_scalar, "mul_scalar", a, s); }
Tensor div(const Tensor& a, double s) {
  SIAM_CHECK(s != 0.0, "div: division of a tensor of shape ", shape_str(a.shape()), " by the scalar 0");
  return unary_op(UnaryOp::mul_scalar, "mul_scalar", a, 1.0 / s);
}
Tensor rdiv(double s, const Tensor& a) { return unary_op(UnaryOp::rdiv_scalar, "rdiv_scalar", a, s); }
Tensor pow(const Tensor& a, double e) { return unary_op(UnaryOp::pow_scalar, "pow_scalar", a, e); }

Tensor neg(const Tensor& x) { return unary_op(UnaryOp::neg, "neg", x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::exp, "exp", x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::log, "log", x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::sqrt, "sqrt", x); }
Tensor rsqrt(const Tensor& x) { return unary_op(UnaryOp::rsqrt, "rsqrt", x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::abs, "abs", x); }
Tensor sign(const Tensor& x) { return unary_raw(UnaryOp::sign, "sign", x); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  SIAM_CHECK(lo <= hi, "clamp: lower bound ", lo, " above upper bound ", hi);
  return unary_op(UnaryOp::clamp, "clamp", x, lo, hi);
}
Tensor clamp_min(const Tensor& x, double lo) {
  return unary_op(UnaryOp::clamp, "clamp", x, lo, std::numeric_limits<double>::infinity());
}
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::relu, "relu", x); }
Tensor gelu(const Tensor& x) { return unary_op(UnaryOp::gelu, "gelu", x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::sigmoid, "sigmoid", x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::tanh, "tanh", x); }
Tensor square(const Tensor& x) { return pow(x, 2.0); }

Tensor gt(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::gt, "gt", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::lt, "lt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::ge, "ge", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::le, "le", a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::eq, "eq", a, b); }
Tensor gt(const Tensor& a, double s) { return gt(a, scalar_like(s, a)); }
Tensor lt(const Tensor& a, double s) { return lt(a, scalar_like(s, a)); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  ops::require_same_device("where", a, b);
  ops::require_same_device("where", cond, a);
  ops::require_same_dtype("where", a, b);
  ops::require_floating("where", a);
  Tensor c = cond.dtype() == DType::u8 ? cond : cond.to(DType::u8);
  Shape out_shape = broadcast_shapes(broadcast_shapes(c.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor ec = c.detach().expand(out_shape), ea = a.detach().expand(out_shape), eb = b.detach().expand(out_shape);
  Tensor out = empty(out_shape, a.options());
  if (a.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(a.device().index);
                   kernels::cuda::where(a.dtype(), static_cast<int>(out.dim()), out_shape.data(), ec.data<uint8_t>(),
                                        ec.strides().data(), ea.raw_data(), ea.strides().data(), eb.raw_data(),
                                        eb.strides().data(), out.raw_data()));
  } else {
    SIAM_DISPATCH_FLOAT(a.dtype(), "where",
                        kernels::cpu::where<scalar_t>(static_cast<int>(out.dim()), out_shape.data(),
                                                      ec.data<uint8_t>(), ec.strides().data(), ea.data<scalar_t>(),
                                                      ea.strides().data(), eb.data<scalar_t>(), eb.strides().data(),
                                                      out.data<scalar_t>()));
  }
  if (autograd::needs_grad({a, b})) {
    Tensor cd = c.detach();
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("where", out, {a, b}, [cd, sa, sb](const Tensor& g, const std::vector<bool>& need) {
      Tensor zero = zeros({}, g.options());
      return std::vector<Tensor>{need[0] ? sum_to(where(cd, g, zero), sa) : Tensor(),
                                 need[1] ? sum_to(where(cd, zero, g), sb) : Tensor()};
    });
  }
  return out;
}

}  // namespace siam

// Front-ends of reductions and the softmax family. Reduced dims are moved last (a copy only when they are
// not already the innermost ones), so every kernel sees contiguous (rows, cols) data. CUDA tensors go to
// kernels/cuda/reduce with the same layouts.
#include "engine/ops/reduce.h"

#include <algorithm>
#include <numeric>

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/stream.h"

namespace siam {

using kernels::cpu::ReduceOp;

namespace {

struct ReducePlan {
  std::vector<bool> reduced;  // per input dim
  Shape keep_shape;           // output shape with keepdim
  Shape out_shape;            // output shape as requested
  int64_t count = 1;          // elements reduced per output
};

ReducePlan plan_reduce(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  ReducePlan p;
  p.reduced.assign(x.dim(), dims.empty());  // empty dims: reduce all
  for (auto d : dims) {
    int64_t w = x.wrap_dim(d, op);
    SIAM_CHECK(!p.reduced[w], op, ": dim ", d, " given twice");
    p.reduced[w] = true;
  }
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (p.reduced[i]) {
      p.count *= x.shape()[i];
      p.keep_shape.push_back(1);
      if (keepdim) p.out_shape.push_back(1);
    } else {
      p.keep_shape.push_back(x.shape()[i]);
      p.out_shape.push_back(x.shape()[i]);
    }
  }
  return p;
}

// x with kept dims first and reduced dims last, contiguous, as (rows, cols).
Tensor rows_layout(const Tensor& x, const ReducePlan& p) {
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (!p.reduced[i]) perm.push_back(i);
  for (int64_t i = 0; i < x.dim(); ++i)
    if (p.reduced[i]) perm.push_back(i);
  return x.detach().permute(perm).contiguous();
}

Tensor reduce_raw(ReduceOp op, const char* name, const Tensor& x, const ReducePlan& p) {
  ops::require_floating(name, x);
  int64_t cols = p.count, rows = cols == 0 ? shape_numel(p.keep_shape) : x.numel() / cols;
  Tensor out = empty(p.out_shape, x.options());
  if (cols == 0) {
    SIAM_CHECK(op == ReduceOp::sum, name, ": reduction over an empty dim of shape ", shape_str(x.shape()));
    out.zero_();
    return out;
  }
  // Reduced dims leading a contiguous tensor (a sum over the batch): walk rows in place, no transpose.
  int64_t lead = 0;
  while (lead < x.dim() && p.reduced[lead]) ++lead;
  bool prefix = lead > 0 && lead < x.dim() && x.is_contiguous();
  for (int64_t i = lead; i < x.dim(); ++i) prefix = prefix && !p.reduced[i];
  if (prefix) {
    Tensor xd = x.detach();
    if (x.is_cuda()) {
      SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                     kernels::cuda::reduce_outer(op, x.dtype(), cols, rows, xd.raw_data(), out.raw_data()));
      return out;
    }
    SIAM_DISPATCH_FLOAT(x.dtype(), name,
                        kernels::cpu::reduce_outer<scalar_t>(op, cols, rows, xd.data<scalar_t>(), out.data<scalar_t>()));
    return out;
  }
  Tensor xc = rows_layout(x, p);
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   kernels::cuda::reduce_rows(op, x.dtype(), rows, cols, xc.raw_data(), out.raw_data()));
    return out;
  }
  SIAM_DISPATCH_FLOAT(x.dtype(), name,
                      kernels::cpu::reduce_rows<scalar_t>(op, rows, cols, xc.data<scalar_t>(), out.data<scalar_t>()));
  return out;
}

Tensor maxmin(ReduceOp op, const char* name, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReducePlan p = plan_reduce(x, dims, keepdim, name);
  Tensor out = reduce_raw(op, name, x, p);
  if (autograd::needs_grad({x})) {
    Tensor xd = x.detach(), od = out.detach().reshape(p.keep_shape);
    Shape keep = p.keep_shape;
    std::vector<int64_t> rdims;
    for (int64_t i = 0; i < x.dim(); ++i)
      if (p.reduced[i]) rdims.push_back(i);
    autograd::record(name, out, {x}, [xd, od, keep, rdims](const Tensor& g, const std::vector<bool>&) {
      Tensor mask = eq(xd, od).to(xd.dtype());
      Tensor count = sum(mask, rdims, true);
      return std::vector<Tensor>{mul(div(mask, count), g.reshape(keep))};
    });
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReducePlan p = plan_reduce(x, dims, keepdim, "sum");
  Tensor out = reduce_raw(ReduceOp::sum, "sum", x, p);
  if (autograd::needs_grad({x})) {
    Shape keep = p.keep_shape, in_shape = x.shape();
    autograd::record("sum", out, {x}, [keep, in_shape](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{g.reshape(keep).expand(in_shape)};
    });
  }
  return out;
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReducePlan p = plan_reduce(x, dims, keepdim, "mean");
  SIAM_CHECK(p.count > 0, "mean: reduction over an empty dim of shape ", shape_str(x.shape()));
  return div(sum(x, dims, keepdim), static_cast<double>(p.count));
}

Tensor max(const Tensor& x) { return maxmin(ReduceOp::max, "max", x, {}, false); }
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return maxmin(ReduceOp::max, "max", x, dims, keepdim);
}
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return maxmin(ReduceOp::min, "min", x, dims, keepdim);
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  ReducePlan p = plan_reduce(x, dims, keepdim, "var");
  SIAM_CHECK(p.count - correction > 0, "var: ", p.count, " elements per output with correction ", correction,
             " (shape ", shape_str(x.shape()), ")");
  Tensor centered = sub(x, mean(x, dims, true));
  return div(sum(mul(centered, centered), dims, keepdim), static_cast<double>(p.count - correction));
}

Tensor norm(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out;
  ReducePlan p = plan_reduce(x, dims, keepdim, "norm");
  {
    NoGradGuard ng;
    out = sqrt(sum(mul(x, x), dims, keepdim));
  }
  if (autograd::needs_grad({x})) {
    Tensor xd = x.detach(), od = out.detach().reshape(p.keep_shape);
    Shape keep = p.keep_shape;
    autograd::record("norm", out, {x}, [xd, od, keep](const Tensor& g, const std::vector<bool>&) {
      // d|x|/dx = x / |x|, taken as 0 where |x| = 0
      Tensor zero = zeros({}, od.options());
      Tensor safe = where(gt(od, zero), od, ones({}, od.options()));
      Tensor scale = where(gt(od, zero), div(g.reshape(keep), safe), zero);
      return std::vector<Tensor>{mul(xd, scale)};
    });
  }
  return out;
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  ops::require_floating("argmax", x);
  int64_t d = x.wrap_dim(dim, "argmax");
  Tensor xc = x.detach().transpose(d, -1).contiguous();
  int64_t cols = x.dim() == 0 ? 1 : x.shape()[d];
  SIAM_CHECK(cols > 0, "argmax: empty dim ", dim, " in shape ", shape_str(x.shape()));
  int64_t rows = x.numel() / cols;
  Shape out_shape = x.shape();
  if (x.dim() > 0) {
    if (keepdim)
      out_shape[d] = 1;
    else
      out_shape.erase(out_shape.begin() + d);
  }
  // rows of xc are in the order of x's dims with d moved last; the output wants d removed: same order
  // unless d was not last, where transpose swapped d with the last dim. Compute in that order, then fix.
  Tensor idx = empty({rows}, TensorOptions(DType::i64, x.device()));
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   kernels::cuda::argmax_rows(x.dtype(), rows, cols, xc.raw_data(), idx.data<int64_t>()));
  } else {
    SIAM_DISPATCH_FLOAT(x.dtype(), "argmax", {
      const scalar_t* p = xc.data<scalar_t>();
      int64_t* o = idx.data<int64_t>();
      for (int64_t r = 0; r < rows; ++r) {
        int64_t best = 0;
        for (int64_t c = 1; c < cols; ++c)
          if (p[r * cols + c] > p[r * cols + best]) best = c;
        o[r] = best;
      }
    });
  }
  if (x.dim() == 0) return idx.reshape({});
  Shape tshape = x.shape();
  std::swap(tshape[d], tshape.back());
  tshape.back() = 1;
  Tensor r = idx.reshape(tshape).transpose(d, -1).contiguous();  // back to x's dim order, d has size 1
  return r.reshape(out_shape);
}

namespace {
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  ops::require_floating(name, x);
  if (x.dim() == 0) return softmax_impl(x.reshape({1}), 0, log).reshape({});
  int64_t d = x.wrap_dim(dim, name);
  int64_t last = x.dim() - 1;
  Tensor xc = x.detach().transpose(d, last).contiguous();
  int64_t cols = x.shape()[d], rows = cols ? x.numel() / cols : 0;
  Tensor y = empty(xc.shape(), x.options());
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   kernels::cuda::softmax_rows(x.dtype(), rows, cols, xc.raw_data(), y.raw_data(), log));
  } else {
    SIAM_DISPATCH_FLOAT(x.dtype(), name,
                        kernels::cpu::softmax_rows<scalar_t>(rows, cols, xc.data<scalar_t>(), y.data<scalar_t>(), log));
  }
  Tensor out = y.transpose(d, last).contiguous();
  if (autograd::needs_grad({x})) {
    Tensor yd = y;  // (transposed layout, contiguous)
    autograd::record(name, out, {x}, [yd, d, last, rows, cols, log, name](const Tensor& g, const std::vector<bool>&) {
      Tensor gc = g.transpose(d, last).contiguous();
      Tensor gx = empty(gc.shape(), gc.options());
      if (gc.is_cuda()) {
        SIAM_CUDA_ONLY(cuda::DeviceGuard dg(gc.device().index);
                       kernels::cuda::softmax_backward_rows(gc.dtype(), rows, cols, gc.raw_data(), yd.raw_data(),
                                                            gx.raw_data(), log));
        return std::vector<Tensor>{gx.transpose(d, last).contiguous()};
      }
      SIAM_DISPATCH_FLOAT(gc.dtype(), name,
                          kernels::cpu::softmax_backward_rows<scalar_t>(rows, cols, gc.data<scalar_t>(),
                                                                        yd.data<scalar_t>(), gx.data<scalar_t>(), log));
      return std::vector<Tensor>{gx.transpose(d, last).contiguous()};
    });
  }
  return out;
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim) {
  ops::require_floating("logsumexp", x);
  ReducePlan p = plan_reduce(x, {dim}, keepdim, "logsumexp");
  Tensor xc = rows_layout(x, p);
  int64_t cols = p.count;
  SIAM_CHECK(cols > 0, "logsumexp: empty dim ", dim, " in shape ", shape_str(x.shape()));
  int64_t rows = x.numel() / cols;
  Tensor out = empty(p.out_shape, x.options());
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   kernels::cuda::logsumexp_rows(x.dtype(), rows, cols, xc.raw_data(), out.raw_data()));
  } else {
    SIAM_DISPATCH_FLOAT(x.dtype(), "logsumexp",
                        kernels::cpu::logsumexp_rows<scalar_t>(rows, cols, xc.data<scalar_t>(), out.data<scalar_t>()));
  }
  if (autograd::needs_grad({x})) {
    Tensor xd = x.detach(), od = out.detach().reshape(p.keep_shape);
    Shape keep = p.keep_shape;
    autograd::record("logsumexp", out, {x}, [xd, od, keep](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{mul(exp(sub(xd, od)), g.reshape(keep))};
    });
  }
  return out;
}

}  // namespace siam

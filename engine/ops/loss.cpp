// Losses and similarities, written as compositions of differentiable primitives (their gradients come
// from the primitives' backward rules; the fused siamese kernels live in kernels/ and arrive separately).
// On CUDA, cross-entropy over class indices and normalize run fused kernels (kernels/cuda/loss.h) with their
// own backward; tests/cuda compares them with the CPU compositions.
#include "engine/ops/loss.h"

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "kernels/cuda/loss.h"
#include "kernels/cuda/stream.h"

namespace siam {

namespace {
Tensor reduce_loss(const Tensor& per_item, Reduction r) {
  switch (r) {
    case Reduction::mean: return mean(per_item);
    case Reduction::sum: return sum(per_item);
    case Reduction::none: return per_item;
  }
  return per_item;
}

// Per-row cross-entropy of CUDA logits (N, C) against class indices, fused (kernels/cuda/loss.h).
Tensor cross_entropy_cuda(const Tensor& logits, const Tensor& target, double smoothing) {
  const int64_t n = logits.size(0), c = logits.size(1);
  ops::require_same_device("cross_entropy", logits, target);
  Tensor t = target.to(DType::i64).contiguous();
  {
    // The indices are checked on the host (one small copy and a sync), as gather does on the CPU path.
    Tensor th = t.to(kCPU);
    const int64_t* p = th.data<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      SIAM_CHECK(p[i] >= 0 && p[i] < c, "cross_entropy: target ", p[i], " of row ", i, " out of range [0, ", c,
                 ") for logits of shape ", shape_str(logits.shape()));
  }
  Tensor x = logits.detach().contiguous();
  Tensor loss = empty({n}, logits.options()), lse = empty({n}, logits.options());
  SIAM_CUDA_ONLY(cuda::DeviceGuard g(logits.device().index);
                 kernels::cuda::cross_entropy_forward(x.dtype(), n, c, x.raw_data(), t.data<int64_t>(), smoothing,
                                                      loss.raw_data(), lse.raw_data()));
  if (autograd::needs_grad({logits})) {
    autograd::record("cross_entropy", loss, {logits}, [x, t, lse, n, c, smoothing](const Tensor& g,
                                                                                 const std::vector<bool>&) {
      Tensor gc = g.contiguous();
      Tensor dx = empty(x.shape(), x.options());
      SIAM_CUDA_ONLY(cuda::DeviceGuard dg(x.device().index);
                     kernels::cuda::cross_entropy_backward(x.dtype(), n, c, x.raw_data(), t.data<int64_t>(),
                                                           lse.raw_data(), gc.raw_data(), smoothing, dx.raw_data()));
      return std::vector<Tensor>{dx};
    });
  }
  return loss;
}

// x / max(|x| along dim, eps) for a CUDA tensor, fused (kernels/cuda/loss.h); rows are the other dims.
Tensor normalize_cuda(const Tensor& x, int64_t dim, double eps) {
  const int64_t d = x.wrap_dim(dim, "normalize"), last = x.dim() - 1;
  Tensor xc = x.detach().transpose(d, last).contiguous();
  const int64_t cols = x.shape()[d], rows = cols ? x.numel() / cols : 0;
  Tensor y = empty(xc.shape(), x.options()), nrm = empty({rows}, x.options());
  SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                 kernels::cuda::l2_normalize_forward(x.dtype(), rows, cols, xc.raw_data(), eps, y.raw_data(),
                                                     nrm.raw_data()));
  Tensor out = y.transpose(d, last).contiguous();
  if (autograd::needs_grad({x})) {
    autograd::record("normalize", out, {x}, [y, nrm, d, last, rows, cols, eps](const Tensor& g,
                                                                               const std::vector<bool>&) {
      Tensor gc = g.transpose(d, last).contiguous();
      Tensor gx = empty(gc.shape(), gc.options());
      SIAM_CUDA_ONLY(cuda::DeviceGuard dg(gc.device().index);
                     kernels::cuda::l2_normalize_backward(gc.dtype(), rows, cols, gc.raw_data(), y.raw_data(),
                                                          nrm.raw_data(), eps, gx.raw_data()));
      return std::vector<Tensor>{gx.transpose(d, last).contiguous()};
    });
  }
  return out;
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing, Reduction reduction) {
  ops::require_floating("cross_entropy", logits);
  SIAM_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", shape_str(logits.shape()));
  SIAM_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "cross_entropy: label_smoothing ", label_smoothing,
             " outside [0, 1]");
  const int64_t n = logits.size(0), c = logits.size(1);
  Tensor per_item;
  if (target.dtype() == DType::i64 || target.dtype() == DType::i32) {
    SIAM_CHECK(target.dim() == 1 && target.size(0) == n, "cross_entropy: class-index target must be (N) = (", n,
               "), got ", shape_str(target.shape()));
    if (logits.is_cuda()) return reduce_loss(cross_entropy_cuda(logits, target, label_smoothing), reduction);
    Tensor logp = log_softmax(logits, 1);
    Tensor t = target.to(DType::i64);
    Tensor nll = neg(gather(logp, 1, t.unsqueeze(1)).squeeze(1));  // gather checks the index range
    per_item = label_smoothing > 0 ? add(mul(nll, 1.0 - label_smoothing), mul(neg(mean(logp, {1})), label_smoothing))
                                   : nll;
  } else {
    SIAM_CHECK(target.shape() == logits.shape(), "cross_entropy: soft target must match logits ",
               shape_str(logits.shape()), ", got ", shape_str(target.shape()));
    ops::require_same_dtype("cross_entropy", logits, target);
    Tensor t = label_smoothing > 0 ? add(mul(target, 1.0 - label_smoothing), label_smoothing / static_cast<double>(c))
                                   : target;
    per_item = neg(sum(mul(t, log_softmax(logits, 1)), {1}));
  }
  return reduce_loss(per_item, reduction);
}

Tensor mse_loss(const Tensor& a, const Tensor& b, Reduction reduction) {
  SIAM_CHECK(a.shape() == b.shape(), "mse_loss: shapes differ, ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  Tensor d = sub(a, b);
  return reduce_loss(mul(d, d), reduction);
}

Tensor cosine_similarity(const Tensor& a, const Tensor& b, int64_t dim, double eps) {
  Shape s = broadcast_shapes(a.shape(), b.shape(), "cosine_similarity");
  int64_t d = dim < 0 ? dim + static_cast<int64_t>(s.size()) : dim;
  SIAM_CHECK(d >= 0 && d < static_cast<int64_t>(s.size()), "cosine_similarity: dim ", dim,
             " out of range for shape ", shape_str(s));
  Tensor na = clamp_min(norm(a, {dim}), eps), nb = clamp_min(norm(b, {dim}), eps);
  return div(sum(mul(a, b), {dim}), mul(na, nb));
}

Tensor normalize(const Tensor& x, int64_t dim, double eps) {
  if (x.is_cuda() && x.dim() > 0) {
    ops::require_floating("normalize", x);
    return normalize_cuda(x, dim, eps);
  }
  return div(x, clamp_min(norm(x, {dim}, true), eps));
}

}  // namespace siam

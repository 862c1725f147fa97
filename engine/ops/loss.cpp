// Losses and similarities, written as compositions of differentiable primitives (their gradients come
// from the primitives' backward rules; the fused siamese kernels live in kernels/ and arrive separately).
#include "engine/ops/loss.h"

#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"

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
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing, Reduction reduction) {
  ops::require_floating("cross_entropy", logits);
  SIAM_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", shape_str(logits.shape()));
  SIAM_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "cross_entropy: label_smoothing ", label_smoothing,
             " outside [0, 1]");
  const int64_t n = logits.size(0), c = logits.size(1);
  Tensor logp = log_softmax(logits, 1);
  Tensor per_item;
  if (target.dtype() == DType::i64 || target.dtype() == DType::i32) {
    SIAM_CHECK(target.dim() == 1 && target.size(0) == n, "cross_entropy: class-index target must be (N) = (", n,
               "), got ", shape_str(target.shape()));
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
    per_item = neg(sum(mul(t, logp), {1}));
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
  return div(x, clamp_min(norm(x, {dim}, true), eps));
}

}  // namespace siam

// W-MSE: whitened sub-batches + normalized MSE. (methods/wmse.h)
#include "methods/wmse.h"

#include "engine/ops/consistency.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/shape.h"
#include "engine/ops/whiten.h"

namespace siam::methods {

WMSE::WMSE(std::shared_ptr<models::ResNet> encoder, const MethodOptions& options) : Method("WMSE", std::move(encoder)) {
  opt_ = options;
  SIAM_CHECK(opt_.whiten_iters >= 1, "wmse: method.whiten_iters must be >= 1, got ", opt_.whiten_iters);
  SIAM_CHECK(opt_.whiten_size > opt_.projector.out, "wmse: method.whiten_size (", opt_.whiten_size,
             ") must exceed the embedding size method.projector.out (", opt_.projector.out,
             "), or the sub-batch covariance is singular");
  projector_ = register_module("projector", make_head(encoder_->feature_dim(), opt_.projector));
}

LossOutput WMSE::loss(const std::vector<Tensor>& views, const StepInfo& info) {
  const int64_t b = check_views(views) * comm().world_size();  // the global batch
  const int64_t w = opt_.whiten_size;
  SIAM_CHECK(b % w == 0, "wmse: the batch (", b, ") must be a multiple of method.whiten_size (", w, ")");
  auto z = project(*projector_, encode(*encoder_, views));  // V x (B, D)
  for (auto& zv : z) zv = gather_rows(zv);                  // V x (W B, D): sub-batches span all ranks
  const size_t nv = z.size();
  Tensor total;
  int64_t terms = 0;
  for (int it = 0; it < opt_.whiten_iters; ++it) {
    auto perm = permutation(b, /*purpose=*/2, info.step * opt_.whiten_iters + it);
    for (int64_t s = 0; s < b / w; ++s) {
      std::vector<int64_t> ids(perm.begin() + s * w, perm.begin() + (s + 1) * w);
      Tensor idx = from_vector_i64(ids, {w}).to(z[0].device());
      std::vector<Tensor> white;  // V x (w, D)
      // The D x D Cholesky runs in f64: it costs nothing at these sizes, and an f32 factor of a covariance
      // whose condition number reaches 1e5 (common once features correlate) fails or loses half its digits.
      // On a GPU the sub-batch stays there: whiten forms the covariance on the device and sends only that
      // (D x D) to the host, where LAPACK factors it (engine/ops/whiten.cpp).
      for (size_t v = 0; v < nv; ++v) {
        Tensor x = index_select(z[v], 0, idx);
        white.push_back(whiten(x.to(DType::f64), opt_.whiten_eps).to(z[v].dtype()));
      }
      for (size_t i = 0; i + 1 < nv; ++i)
        for (size_t j = i + 1; j < nv; ++j) {
          Tensor l = normalized_mse(white[i], white[j]);  // mean over the sub-batch's rows
          total = total.defined() ? add(total, l) : l;
          ++terms;
        }
    }
  }
  // Each sub-batch term is a mean over w rows; dividing by the number of terms gives the mean over all rows,
  // pairs and repeats.
  return {div(total, static_cast<double>(terms)), {}};
}

}  // namespace siam::methods

// The distributed form of the losses built on batch statistics (barlow_twins_loss in siamese.h, vicreg_terms
// in consistency.h): instead of gathering every rank's rows (O(W B D) received per rank, and the statistics of
// W B rows computed on each), each rank reduces its own rows to sums (column sums, sums of squares, the D x D
// cross-correlation or covariance sums) and all-reduces those: O(D^2) communicated, O(B D^2) computed.
// Gathering costs less when D > W B (Barlow Twins' 8192-wide projector on small batches); the methods choose
// with method.batch_stats.
#pragma once
#include <cstdint>
#include <functional>

#include "engine/core/error.h"
#include "engine/tensor.h"

namespace siam {

struct BatchStatHooks {
  // Sums a tensor over the ranks, differentiably: its backward sums the incoming gradients over the ranks
  // (dist::all_reduce_sum). Then every rank returns the global loss, and the gradient of its inputs is that of
  // the sum of the W equal losses (W dL/dz), which DDP's average of the parameter gradients turns into the
  // global loss's: the convention of all_gather_rows (engine/dist/dist.h).
  std::function<Tensor(const Tensor&)> all_reduce_sum;
  int64_t global_batch = 0;  // the number of rows over all ranks
};

// siam::Error naming the op when the hooks cannot describe a batch that contains z's rows.
inline void check_batch_stat_hooks(const char* op, const Tensor& z, const BatchStatHooks& hooks) {
  SIAM_CHECK(static_cast<bool>(hooks.all_reduce_sum), op, ": hooks.all_reduce_sum is empty");
  SIAM_CHECK(hooks.global_batch >= 2 && hooks.global_batch >= z.size(0), op, ": hooks.global_batch (",
             hooks.global_batch, ") must count every rank's rows: at least 2 and at least the local ", z.size(0),
             " of ", shape_str(z.shape()));
}

}  // namespace siam

// Front-end of Sinkhorn-Knopp: validate, wrap the all-reduce hook, dispatch to kernels/cpu/sinkhorn or, for
// CUDA scores on one process, kernels/cuda/sinkhorn (the distributed form makes the round trip to the CPU).
#include "engine/ops/sinkhorn.h"

#include <cmath>
#include <cstring>

#include "engine/ops/dispatch.h"
#include "kernels/cpu/sinkhorn.h"
#include "kernels/cuda/sinkhorn.h"
#include "kernels/cuda/stream.h"

namespace siam {

Tensor sinkhorn(const Tensor& scores, double eps, int iters, bool log_domain, const SinkhornHooks* hooks) {
  const char* op = "sinkhorn";
  SIAM_CHECK(scores.defined(), op, ": scores is undefined");
  ops::require_floating_or_half(op, scores);
  SIAM_CHECK(scores.dim() == 2, op, ": scores must be (B, K) (samples, prototypes), got ", shape_str(scores.shape()));
  const int64_t b = scores.size(0), k = scores.size(1);
  SIAM_CHECK(b >= 1 && k >= 1, op, ": needs at least one sample and one prototype, got scores ",
             shape_str(scores.shape()));
  SIAM_CHECK(std::isfinite(eps) && eps > 0, op, ": eps must be a positive finite number, got ", eps);
  SIAM_CHECK(iters >= 1, op, ": iters must be >= 1, got ", iters);
  // bf16/f16 scores: f32 arithmetic, and the f32 assignments (rounding them would break their row sums)
  if (ops::is_half(scores.dtype())) return sinkhorn(scores.to(DType::f32), eps, iters, log_domain, hooks);
  int64_t global_b = b;
  kernels::cpu::SinkhornAllReduce reduce;
  if (hooks) {
    SIAM_CHECK(hooks->global_batch == 0 || hooks->global_batch >= b, op, ": hooks->global_batch (", hooks->global_batch,
               ") is smaller than the local batch B = ", b, " of scores ", shape_str(scores.shape()));
    if (hooks->global_batch > 0) global_b = hooks->global_batch;
    if (hooks->all_reduce_sum) {
      reduce = [hooks](double* data, int64_t n) {
        Tensor t = empty({n}, TensorOptions(DType::f64));
        std::memcpy(t.data<double>(), data, sizeof(double) * size_t(n));
        hooks->all_reduce_sum(t);
        SIAM_CHECK(t.defined() && t.dtype() == DType::f64 && t.shape() == Shape{n} && t.is_cpu(),
                   "sinkhorn: the all_reduce_sum hook must sum in place and keep an f64 CPU tensor of shape [", n, "]");
        Tensor tc = t.contiguous();
        std::memcpy(data, tc.data<double>(), sizeof(double) * size_t(n));
      };
    }
  }
  if (scores.device().is_cuda()) {
    // The all-reduce hook works on host doubles between the passes: that form runs on the CPU (B x K scores,
    // small next to the encoder's work). SwAV gathers its scores and takes the single-process form below.
    if (reduce) return sinkhorn(scores.to(kCPU), eps, iters, log_domain, hooks).to(scores.device());
    const DType dt = scores.dtype();
    Tensor s = scores.detach().contiguous();
    Tensor q = empty({b, k}, s.options());
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(s.device().index);
                   Tensor scratch = empty({kernels::cuda::sinkhorn_scratch_doubles(b, k)},
                                          TensorOptions(DType::f64, s.device()));
                   kernels::cuda::sinkhorn(dt, b, k, s.raw_data(), eps, iters, log_domain, double(global_b),
                                           static_cast<double*>(scratch.raw_data()), q.raw_data()));
    return q;
  }
  Tensor s = scores.detach().contiguous();
  Tensor q = empty({b, k}, scores.options());  // (B, K), never requires grad
  SIAM_DISPATCH_FLOAT(s.dtype(), op,
                      kernels::cpu::sinkhorn<scalar_t>(b, k, s.data<scalar_t>(), eps, iters, log_domain, global_b,
                                                       reduce, q.data<scalar_t>()));
  return q;
}

}  // namespace siam

// all_gather_rows and all_reduce_sum: collectives recorded on the autograd tape. Both backwards SUM the
// incoming gradients over the ranks (the convention of engine/dist/dist.h and docs/DECISIONS.md).
#include "engine/autograd/node.h"
#include "engine/dist/backends.h"

namespace siam::dist {

Tensor all_gather_rows(const Tensor& x) { return all_gather_rows(x, world()); }
Tensor all_reduce_sum(const Tensor& x) { return all_reduce_sum(x, world()); }

// x (n, ...) -> y (W n, ...). y = [x_0; ...; x_{W-1}] on every rank, so dL/dx_r = sum over ranks q of the
// block r of rank q's gradient of y: a reduce-scatter (sum) of the gathered gradient.
Tensor all_gather_rows(const Tensor& x, Communicator& comm) {
  const char* op = "all_gather_rows";
  detail::check_rows(op, x, 1);
  Tensor y = comm.all_gather(x);  // (W n, ...)
  if (autograd::needs_grad({x})) {
    Communicator* c = &comm;
    autograd::record(op, y, {x}, [c](const Tensor& gy, const std::vector<bool>&) {
      // gy (W n, ...) -> (n, ...): every rank's gradient of the gathered rows, summed, block `rank`.
      return std::vector<Tensor>{c->reduce_scatter(gy.contiguous(), ReduceOp::sum)};
    });
  }
  return y;
}

// x -> s = sum_r x_r on every rank; dL/dx_r = sum over ranks q of rank q's gradient of s.
Tensor all_reduce_sum(const Tensor& x, Communicator& comm) {
  const char* op = "all_reduce_sum";
  SIAM_CHECK(x.defined(), op, ": the tensor is undefined");
  Tensor y;
  {
    NoGradGuard ng;
    y = x.detach().clone();  // contiguous, a buffer of its own
  }
  comm.all_reduce(y, ReduceOp::sum);
  if (autograd::needs_grad({x})) {
    Communicator* c = &comm;
    autograd::record(op, y, {x}, [c](const Tensor& gy, const std::vector<bool>&) {
      Tensor g = gy.clone();  // the incoming gradient may be shared; reduce a copy
      c->all_reduce(g, ReduceOp::sum);
      return std::vector<Tensor>{g};
    });
  }
  return y;
}

}  // namespace siam::dist

// Checks of the cross-rank ops over two thread ranks (tests/unit/thread_pair.h), for any device.
//
// check_sync_bn_pair: SyncBatchNorm against batch_norm on the whole batch on the CPU: outputs, input gradients, the
// rank-summed weight and bias gradients, and the running statistics of both ranks. Rank 0 gets rows0 of the rows, rank
// 1 the rest (unequal on purpose); loss = sum(y * R), so each rank's input gradient is that of the global loss
// (engine/dist/dist.h's convention). Used on the CPU by tests/unit/thread_pair_test.cpp and on CUDA by
// tests/cuda/dist_ops_cuda_test.cpp.
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <string>

#include "engine/core/random.h"
#include "engine/nn/sync_batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/norm.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "tests/unit/test_util.h"
#include "tests/unit/thread_pair.h"

namespace siam::test {

inline void check_sync_bn_pair(Device dev, DType dt, const Shape& full, int64_t rows0, double tol, uint64_t seed) {
  const std::string what = shape_str(full) + " " + dtype_name(dt) + " on " + dev.str();
  const int64_t C = full[1], N = full[0];
  manual_seed(seed);
  Tensor x = (uniform(full, -1.0, 1.0) * 2.0 + 3.0).to(dt);  // a large mean: the merge must keep its precision
  Tensor R = uniform(full, -1.0, 1.0).to(dt);
  Tensor w = uniform({C}, 0.5, 1.5).to(dt), b = uniform({C}, -0.5, 0.5).to(dt);
  Tensor rm0 = uniform({C}, -0.2, 0.2).to(dt), rv0 = uniform({C}, 0.5, 1.5).to(dt);

  // reference: one rank, the whole batch, on the CPU
  Tensor xg = x.clone().set_requires_grad(), wg = w.clone().set_requires_grad(), bg = b.clone().set_requires_grad();
  Tensor rm_ref = rm0.clone(), rv_ref = rv0.clone();
  Tensor y_ref = batch_norm(xg, rm_ref, rv_ref, wg, bg, /*training=*/true, 0.1, 1e-5);
  sum(y_ref * R).backward();

  struct Out {
    Tensor y, gx, gw, gb, rm, rv;
  };
  std::array<Out, 2> out;
  run_pair([&](dist::Communicator& comm, int rank) {
    const int64_t start = rank == 0 ? 0 : rows0, n = rank == 0 ? rows0 : N - rows0;
    Tensor xr = x.narrow(0, start, n).to(dev).clone().set_requires_grad();
    Tensor wr = w.to(dev).clone().set_requires_grad(), br = b.to(dev).clone().set_requires_grad();
    Tensor rm = rm0.to(dev).clone(), rv = rv0.to(dev).clone();
    Tensor y = sync_batch_norm(xr, rm, rv, wr, br, 0.1, 1e-5, comm);
    sum(y * R.narrow(0, start, n).to(dev)).backward();
    out[rank] = {y.detach().to(kCPU), xr.grad().to(kCPU), wr.grad().to(kCPU),
                 br.grad().to(kCPU),  rm.to(kCPU),        rv.to(kCPU)};
  });
  EXPECT_LE(rel_error(cat({out[0].y, out[1].y}, 0), y_ref.detach()), tol) << "forward, " << what;
  EXPECT_LE(rel_error(cat({out[0].gx, out[1].gx}, 0), xg.grad()), tol) << "input grad, " << what;
  EXPECT_LE(rel_error(out[0].gw + out[1].gw, wg.grad()), tol) << "weight grad (summed over ranks), " << what;
  EXPECT_LE(rel_error(out[0].gb + out[1].gb, bg.grad()), tol) << "bias grad (summed over ranks), " << what;
  for (int r = 0; r < 2; ++r) {
    EXPECT_LE(rel_error(out[r].rm, rm_ref), tol) << "running_mean of rank " << r << ", " << what;
    EXPECT_LE(rel_error(out[r].rv, rv_ref), tol) << "running_var of rank " << r << ", " << what;
  }
}

inline void check_collectives_pair(Device dev, DType dt, double tol) {
  const std::string what = std::string(dtype_name(dt)) + " on " + dev.str();
  const int64_t n = 5, d = 7;
  manual_seed(9);
  const std::array<Tensor, 2> X = {uniform({n, d}, -1.0, 1.0).to(dt), uniform({n, d}, -1.0, 1.0).to(dt)};
  Tensor Ry = uniform({2 * n, d}, -1.0, 1.0).to(dt), Rs = uniform({n, d}, -1.0, 1.0).to(dt);
  struct Out {
    Tensor gathered, summed, grad;
  };
  std::array<Out, 2> out;
  run_pair([&](dist::Communicator& comm, int rank) {
    Tensor x = X[rank].to(dev).clone().set_requires_grad();
    Tensor g = dist::all_gather_rows(x, comm);
    Tensor s = dist::all_reduce_sum(x * x, comm);
    (sum(g * Ry.to(dev)) + sum(s * Rs.to(dev))).backward();
    out[rank] = {g.detach().to(kCPU), s.detach().to(kCPU), x.grad().to(kCPU)};
  });
  const Tensor gathered = cat({X[0], X[1]}, 0), summed = X[0] * X[0] + X[1] * X[1];
  for (int r = 0; r < 2; ++r) {
    EXPECT_LE(rel_error(out[r].gathered, gathered), tol) << "all_gather_rows on rank " << r << ", " << what;
    EXPECT_LE(rel_error(out[r].summed, summed), tol) << "all_reduce_sum on rank " << r << ", " << what;
    Tensor want = Ry.narrow(0, r * n, n) * 2.0 + X[r] * Rs * 4.0;
    EXPECT_LE(rel_error(out[r].grad, want), tol) << "input gradient on rank " << r << ", " << what;
  }
}

}  // namespace siam::test

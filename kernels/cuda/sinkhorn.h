// SwAV's Sinkhorn-Knopp on CUDA: the twin of kernels/cpu/sinkhorn.h's fast path for one process (same steps,
// sums in double; exp in f32 through kernels/common/fastmath.h for f32 scores, as the CPU). The distributed
// form (the all-reduce hook) runs on the CPU: engine/ops/sinkhorn.cpp makes the round trip there, and SwAV
// itself gathers the scores and calls the single-process form.
//   plain: shift = max(scores) / eps (two-stage block maxima), E = exp(scores / eps - shift) in the output,
//          a = 1 / (K colsum(E)); iters times: c_b = 1 / (Bg sum_k E_bk a_k) per row, then (but the last time)
//          a_k = 1 / (K sum_b E_bk c_b) per column; the last row pass writes Q = Bg E a c.
//   log:   u = v = 0; iters times: u_k = -log K - lse_b(s_bk / eps + v_b) per column, then
//          v_b = -log Bg - lse_k(s_bk / eps + u_k) per row; the last row pass writes Q = exp(s / eps + u + v +
//          log Bg). Both logsumexps in two passes (max, then the sum of exp), as the CPU.
// Declared without CUDA headers; device pointers, contiguous row-major (B, K), the current stream; dt f32 or
// f64. Column kernels: 32 prototypes x 8 sample groups per block, the groups combined in a fixed order; row
// kernels: a warp per sample (a block when K > 1024; kernels/cuda/rowwise.cuh). Deterministic.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

// Device scratch sinkhorn needs, in doubles.
int64_t sinkhorn_scratch_doubles(int64_t b, int64_t k);
// q (b, k) from scores (b, k); bg: the batch the samples normalize to (b on one process); scratch:
// sinkhorn_scratch_doubles(b, k) doubles on the device.
void sinkhorn(DType dt, int64_t b, int64_t k, const void* scores, double eps, int iters, bool log_domain, double bg,
              double* scratch, void* q);

}  // namespace siam::kernels::cuda

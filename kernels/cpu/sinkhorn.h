// Sinkhorn-Knopp for SwAV's codes on the CPU (see /work/shared/KERNEL_NOTES.md, "Sinkhorn-Knopp").
//
//   scores (B, K) row-major (samples x prototypes), eps > 0, iters >= 1, Bg = the global batch (B on one
//   process). SwAV: Q = exp(scores / eps)^T (K, B), Q /= sum(Q); iters times: each prototype row to sum 1/K,
//   then each sample column to sum 1/Bg; return Bg Q^T (B, K): every sample's row sums to 1, and each
//   prototype's column sums to about Bg / K (exactly at convergence).
//
//   Plain form, as scalings of E = exp(scores / eps - c) (c one shift for all ranks, so nothing overflows for
//   the largest score; it and SwAV's first division by sum(Q) cancel in the first row normalization):
//     a_k = 1 / (K sum_b E_bk c_b)   (sum over all ranks' samples: all-reduced),  c_b = 1 / (Bg sum_k E_bk a_k),
//     Q_bk = Bg E_bk a_k c_b.
//   Log form, with potentials instead of scalings (finite for any eps as long as the scores are):
//     u_k = -log K - lse_b(scores_bk / eps + v_b),  v_b = -log Bg - lse_k(scores_bk / eps + u_k),
//     Q_bk = exp(scores_bk / eps + u_k + v_b + log Bg).
//
// Distributed form: `all_reduce(data, n)` sums n doubles over the ranks in place (empty: one process). Calls,
//   all of them made by every rank in the same order:
//     plain: once [2] (local max of scores / eps, 1) -> c = the mean of the ranks' maxima; then once per
//            iteration [K] (the prototype sums).
//     log:   once [K + 1] (local column maxima of scores / eps, 1) -> per-prototype shifts; then once per
//            iteration [K]: the ranks' exp(local lse_k - shift_k), the shift being the previous iteration's
//            global lse_k (the same on every rank). In double, so this is exact unless a rank's lse moves
//            by more than ~700 between iterations.
//   Column (sample) normalization stays local, with Bg.
//
// Versions:
//   sinkhorn_ref: plain loops in double on the full matrix, exactly SwAV's steps (the log form with a running
//                 logsumexp on log Q); one process.
//   sinkhorn:     the fast path above, sums in double, exp through kernels/common/fastmath.h for f32.
//                 Plain: E is made once in the output buffer, then one pass over it per iteration: each chunk
//                 of 64 samples computes its c_b and, with those rows still in cache, its partial prototype
//                 sums for the next a (or, in the last iteration, writes Q): 1 + iters passes instead of
//                 2 + 2 iters. Scratch: (B / 64) x K doubles of partial sums (1/32 of the f32 scores).
//                 Log: per iteration a two-pass (max, then sum of exp) logsumexp over blocks of 128
//                 prototypes and one per sample; the exp values go through the output buffer so that both
//                 loops vectorize; scratch O(B + K).
//                 No atomics and partial sums in a fixed order: results do not depend on the thread count.
// No gradient: the output is a target.
#pragma once
#include <cstdint>
#include <functional>

namespace siam::kernels::cpu {

using SinkhornAllReduce = std::function<void(double* data, int64_t n)>;

template <class T>
void sinkhorn_ref(int64_t b, int64_t k, const T* scores, double eps, int iters, bool log_domain, T* q);

// q (b, k). global_b: Bg (>= b). all_reduce: see above (empty: one process).
template <class T>
void sinkhorn(int64_t b, int64_t k, const T* scores, double eps, int iters, bool log_domain, int64_t global_b,
              const SinkhornAllReduce& all_reduce, T* q);

}  // namespace siam::kernels::cpu

// InfoNCE / NT-Xent on the CPU: a reference that materializes the similarity matrix, and a tiled kernel that
// never does (see /work/shared/KERNEL_NOTES.md, "Tiled InfoNCE").
//
// Two forms, described by InfonceArgs:
//   self (SimCLR): rows Z (M, D), columns = the rows themselves. S = Z Z^T / t with the diagonal masked;
//                  row i's positive is column pos(i) = (i + pos_offset) mod M (pos_offset = N for 2 views).
//                  loss_i = lse_i - S_{i,pos(i)},  lse_i = log sum_{j != i} exp(S_ij).
//   cross (MoCo):  rows Q (M, D), positive keys K (M, D), negatives (queue) C (cols, D).
//                  row i's logits are [q_i.k_i, q_i.c_0, ..., q_i.c_{cols-1}] / t; the positive is the first.
//                  Gradients flow to Q only.
//   L = (1/M) sum_i loss_i.
//
// Tiled kernel (infonce_forward / infonce_backward):
//   forward:  per row tile of kTileRows rows (OpenMP over tiles), stream column tiles of kTileCols: S tile
//             by sgemm, online max m_i and sum s_i; writes only lse (M). Positive logits by a dot product.
//   backward: G = dL/dS = (P - [j = pos(i)]) / M, P_ij = exp(S_ij - lse_i). Self form: S is symmetric, so
//             dZ_I = (1/t) sum_J (G_IJ + G_JI^T) Z_J where (G_JI^T)_ij = exp(S_ij - lse_j) / M: one pass over
//             row tiles, each recomputing S_IJ once and doing one product (no column pass, no atomics).
//             Cross form: the row pass alone. Positive terms are added outside the tiles.
//   Workspace: one kTileRows x kTileCols buffer per thread (infonce_workspace_elems), O(tile * M) in all with
//             the M-float lse; never M x M.
//   Accumulation in T (f32 for f32, f64 for the f64 gradient checks); the mean over rows is summed in double
//   in row order, so results do not depend on the thread count.
// Normalization (optional, fused by the caller around these calls): z = x / max(|x|, eps),
//   dx = (dz - z (z . dz)) / max(|x|, eps)  (infonce_normalize_rows / infonce_normalize_backward).
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

struct InfonceArgs {
  int64_t rows = 0;        // M
  int64_t cols = 0;        // self: = rows; cross: queue length K (may be 0)
  int64_t dim = 0;         // D
  int64_t pos_offset = 0;  // self form: positive of row i is column (i + pos_offset) mod rows
  bool self = true;        // true: SimCLR form; false: MoCo form
  double temperature = 0.1;
};

constexpr int64_t kInfonceTileRows = 256;
constexpr int64_t kInfonceTileCols = 256;

// Elements of T the tiled kernel allocates as scratch with `threads` OpenMP threads (excluding lse and the
// caller's inputs/outputs): threads * kInfonceTileRows * min(kInfonceTileCols, cols) plus M per-row losses.
int64_t infonce_workspace_elems(const InfonceArgs& a, int threads);

// z (n, d) = x / max(|x|, eps) per row; rnorm (n) = 1 / max(|x|, eps) (rnorm may be null).
template <class T>
void infonce_normalize_rows(int64_t n, int64_t d, const T* x, T* z, T* rnorm, double eps = 1e-12);
// dx (n, d) = (dz - z (z . dz)) * rnorm per row. dx may alias dz.
template <class T>
void infonce_normalize_backward(int64_t n, int64_t d, const T* z, const T* rnorm, const T* dz, T* dx);

// Tiled forward. z (rows, D); keys (rows, D) and queue (cols, D) for the cross form (null for self).
// Writes lse (rows) and returns the mean loss.
template <class T>
double infonce_forward(const InfonceArgs& a, const T* z, const T* keys, const T* queue, T* lse);
// Tiled backward: dz (rows, D) = grad * dL/dz, from the forward's inputs and lse.
template <class T>
void infonce_backward(const InfonceArgs& a, T grad, const T* z, const T* keys, const T* queue, const T* lse, T* dz);

// Reference: plain loops in double, materializes the (rows, cols) logits. x, keys, queue as above, not yet
// normalized when `normalize`. Returns the mean loss; writes dx (rows, D) = dL/dx when dx is not null.
template <class T>
double infonce_ref(const InfonceArgs& a, bool normalize, const T* x, const T* keys, const T* queue, T* dx);

}  // namespace siam::kernels::cpu

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
//   forward:  per row tile of kTileRows rows (OpenMP over tiles; over column ranges too when the row tiles are
//             few, infonce_column_splits), stream column tiles of kTileCols: S tile
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
// Few row tiles (MoCo: a batch of 256 queries against a queue of 65536) would leave threads idle: the forward and
// backward then also split the columns into ranges of whole tiles, until there are kInfonceMinWork work items,
// each range at least kInfonceSplitMinCols wide. The split depends on the shape only, and the ranges' partial
// results are merged in range order, so results still do not depend on the thread count.
constexpr int64_t kInfonceMinWork = 8;
constexpr int64_t kInfonceSplitMinCols = 2048;
// The number of column ranges of infonce_forward / infonce_backward at this shape (1: no split).
int64_t infonce_column_splits(int64_t rows, int64_t cols);

// Elements of T the tiled kernel allocates as scratch with `threads` OpenMP threads (excluding lse and the
// caller's inputs/outputs): threads * kInfonceTileRows * min(kInfonceTileCols, cols) plus M per-row losses,
// plus splits * M * (D + 2) + M when the columns are split (the partial states, positives and gradients).
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


// ---- The other forms: multi-positive (SupCon, V-view NT-Xent), CLIP, distributed (gathered columns) ----
// Built from two tiled pieces that never hold more than a kInfonceTileRows x kInfonceTileCols tile per thread:
//   infonce_rows_lse:  lse_i = log sum_{j != mask[i]} exp(x_i . y_j / t)     x (rows, D), y (cols, D)
//                      (online max and sum over column tiles, as infonce_forward)
//   infonce_grad_pass: dx_i = (scale / t) sum_{j != mask[i]} (exp(S_ij - a_i) + exp(S_ij - b_j)) y_j,
//                      S_ij = x_i . y_j / t; a (rows) / b (cols) are log-normalizers, either may be null (that
//                      term is absent), an entry +inf drops its term for that row / column. One sgemm for the
//                      tile, one for dx_I += G_IJ Y_J; OpenMP over row tiles, no atomics.
// mask (rows) holds the masked column of each row or -1; a null mask masks nothing. The positive terms are
// O(M D) and added outside the tiles. Losses are summed in double in row order (thread-count independent).
//
// SupCon (labels (M)): P(i) = {j != i : labels[j] == labels[i]}, n_i = |P(i)|, rows with n_i > 0 are valid
//   (R of them). loss = (1/R) sum_valid (lse_i - (1/n_i) sum_{p in P(i)} s_ip), lse over j != i.
//   The positive sum is z_i . (Z_c - z_i) / t with Z_c the sum of z over the class (f64). R = 0: loss 0.
//   Backward (S symmetric): dz = grad_pass(z, z, self mask, a = b = lse with +inf on invalid rows,
//   scale = grad / R) - (2 grad / (R t n_c)) (Z_c - z_i) on valid rows.
// CLIP (a, b (N, D)): S = a b^T / t; loss = (1/2N) sum_i (lse^a_i - S_ii) + (1/2N) sum_j (lse^b_j - S_jj) with
//   lse^a over rows of S, lse^b over its columns (two rows_lse passes). Backward: da = grad_pass(a, b, -, lse^a,
//   lse^b, grad / 2N) - (grad / (N t)) b_i, db = grad_pass(b, a, -, lse^b, lse^a, grad / 2N) - (grad / (N t)) a_i.
// Gathered (distributed SimCLR): local rows x (2n, D) = [z1; z2] against gathered columns g (2m, D) = [g1; g2]
//   (m = n * world, this rank's rows at [offset, offset + n) of each view). Row r's own column (masked) is
//   offset + r (view 1) or m + offset + r - n (view 2); its positive the same sample in the other view.
//   loss = (1/2n) sum_r (lse_r - x_r . g_pos(r) / t). Backward: the row pass dx = grad_pass(x, g, own, lse, -,
//   grad / 2n) - (grad / (2n t)) g_pos(r); the column pass dg = grad_pass(g, x, own^T, -, lse, grad / 2n), then
//   dg_pos(r) -= (grad / (2n t)) x_r. Other ranks' columns get gradients too: all_gather's backward sums them.

template <class T>
void infonce_rows_lse(int64_t rows, int64_t cols, int64_t dim, double temperature, const T* x, const T* y,
                      const int64_t* mask, T* lse);
template <class T>
void infonce_grad_pass(int64_t rows, int64_t cols, int64_t dim, double temperature, const T* x, const T* y,
                       const int64_t* mask, const T* a, const T* b, T scale, T* dx);

// SupCon / V-view NT-Xent. z (M, D) rows (already normalized if wanted), labels (M). lse (M) is written.
template <class T>
double supcon_forward(int64_t M, int64_t D, double temperature, const T* z, const int64_t* labels, T* lse);
template <class T>
void supcon_backward(int64_t M, int64_t D, double temperature, T grad, const T* z, const int64_t* labels,
                     const T* lse, T* dz);

// CLIP. a, b (N, D); lse_a, lse_b (N) written by the forward.
template <class T>
double clip_forward(int64_t N, int64_t D, double temperature, const T* a, const T* b, T* lse_a, T* lse_b);
template <class T>
void clip_backward(int64_t N, int64_t D, double temperature, T grad, const T* a, const T* b, const T* lse_a,
                   const T* lse_b, T* da, T* db);

// Gathered NT-Xent. x (2n, D), g (2m, D); lse (2n) written by the forward; dx (2n, D), dg (2m, D).
template <class T>
double infonce_gathered_forward(int64_t n, int64_t m, int64_t offset, int64_t D, double temperature, const T* x,
                                const T* g, T* lse);
template <class T>
void infonce_gathered_backward(int64_t n, int64_t m, int64_t offset, int64_t D, double temperature, T grad,
                               const T* x, const T* g, const T* lse, T* dx, T* dg);

// References for the tests: plain loops in double, materializing the logits (inputs already normalized).
// Return the loss and write the gradients (all in double).
double supcon_ref(int64_t M, int64_t D, double temperature, const double* z, const int64_t* labels, double* dz);
double clip_ref(int64_t N, int64_t D, double temperature, const double* a, const double* b, double* da, double* db);
double infonce_gathered_ref(int64_t n, int64_t m, int64_t offset, int64_t D, double temperature, const double* x,
                            const double* g, double* dx, double* dg);

}  // namespace siam::kernels::cpu

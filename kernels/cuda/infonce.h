// Tiled InfoNCE / NT-Xent on CUDA: the twin of kernels/cpu/infonce.h's infonce_forward / infonce_backward (same
// InfonceArgs, same two forms, same math; see /work/shared/KERNEL_NOTES.md, "Tiled InfoNCE"). Declared without
// CUDA headers (called by engine/ops/siamese.cpp); device pointers, contiguous rows, launched on the current
// stream. dt is f32 or f64 (bf16/f16 inputs are widened to f32 by the caller, as on the CPU).
//
//   self (SimCLR): z (M, D); S = z z^T / t, diagonal masked; row i's positive is column (i + pos_offset) mod M.
//   cross (MoCo):  queries z (M, D), keys (M, D), queue (cols, D); row i's logits [z_i.k_i, z_i.c_j ...] / t.
//   infonce_forward:  pos (M) = positive logits, lse (M), loss (1 element) = mean_i (lse_i - pos_i).
//                     Never writes an M x M (or M x cols) matrix: O(M) extra memory.
//   infonce_backward: dz (M, D) = grad[0] * dL/dz, grad a device scalar (the upstream gradient, no host sync).
// Versions (kernels in infonce.cu):
//   infonce_lse_kernel1   64-row tile per block, 64x64 logit tiles from 32-wide shared-memory slices of D
//                         (4x4 register micro-tile per thread), online max/sum per thread, merged across the
//                         16 threads of a row by shuffles at the end (kernels/common/online_lse.h). Also the
//                         kernel of infonce_rows_lse (below).
//   infonce_grad_kernel1  the row pass: recomputes each 64x64 tile, forms exp(S - lse_i) (+ exp(S - lse_j) for
//                         the self form: S is symmetric, so G + G^T needs no column pass and no atomics), and
//                         accumulates P Z_J for 128 columns of D at a time in registers (D > 128 recomputes S
//                         once per 128-column slice). Also the kernel of infonce_grad_pass (below).
//   infonce_pos_*_kernel1 warp per row: the positive logits, and the positive terms of the gradient.
//   infonce_loss_kernel1  one block: mean of lse - pos summed in f64 in a fixed order (deterministic).
// All CUDA-core FMA in the compute type; a tensor-core (bf16 mma) kernel2 is the next step.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"
#include "kernels/cpu/infonce.h"  // InfonceArgs

namespace siam::kernels::cuda {

using cpu::InfonceArgs;

// z (rows, D); keys (rows, D) and queue (cols, D) for the cross form (null for self). Writes pos (rows),
// lse (rows) and loss (1 element), all of dtype dt.
void infonce_forward(DType dt, const InfonceArgs& a, const void* z, const void* keys, const void* queue, void* pos,
                     void* lse, void* loss);
// dz (rows, D) = grad[0] * dL/dz from the forward's inputs and lse. grad: 1 element of dtype dt on the device.
void infonce_backward(DType dt, const InfonceArgs& a, const void* grad, const void* z, const void* keys,
                      const void* queue, const void* lse, void* dz);

// ---- The pieces of the other forms (SupCon / V-view NT-Xent, CLIP, gathered), as kernels/cpu/infonce.h's
// infonce_rows_lse / infonce_grad_pass; engine/ops/siamese.cpp adds the O(M D) positive terms with engine ops.
// mask: rows device i64 (each row's masked column, or -1), or null (nothing masked). The same two kernels as
// the SimCLR form, with the per-row mask in place of the diagonal.

// lse (rows) = log sum_{j != mask[i]} exp(x_i . y_j / t); x (rows, D), y (cols, D).
void infonce_rows_lse(DType dt, int64_t rows, int64_t cols, int64_t dim, double temperature, const void* x,
                      const void* y, const int64_t* mask, void* lse);
// dx (rows, D) = grad[0] * scale / t * sum_{j != mask[i]} (exp(S_ij - a_i) + exp(S_ij - b_j)) y_j; a (rows) /
// b (cols) may be null (term absent), +inf entries drop their term; grad: 1 element of dt on the device.
void infonce_grad_pass(DType dt, int64_t rows, int64_t cols, int64_t dim, double temperature, const void* x,
                       const void* y, const int64_t* mask, const void* a, const void* b, const void* grad,
                       double scale, void* dx);

}  // namespace siam::kernels::cuda

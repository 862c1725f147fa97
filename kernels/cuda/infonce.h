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
//   kernel1: all CUDA-core FMA in the compute type.
//   infonce_lse_kernel2 / infonce_grad_kernel2 (session 5): the same two passes on bf16 tensor cores
//                         (mma.sync m16n8k16, f32 accumulation; fragments in kernels/common/mma_frag.h) for
//                         every form (rows_lse / grad_pass too) when the caller passes bf16 copies of the rows
//                         (InfonceBf16):
//                         4 warps x 16 rows a block, 64-column tiles staged in shared memory, the probabilities
//                         kept in registers as the A operand of P Y, and the gradient's 16 x DP row block
//                         accumulated in registers (no recompute of S per slice of D). Features padded with
//                         zeros to DP = 64, 128, 192 or 256 (infonce_tc_dim). The positive terms and the loss stay
//                         kernel1's, in f32 from the f32 rows.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"
#include "kernels/cpu/infonce.h"  // InfonceArgs

namespace siam::kernels::cuda {

using cpu::InfonceArgs;

// The tensor-core operands: bf16 copies (row stride dp, zeros past dim) of the rows z and, for the cross form,
// of the queue. dp = infonce_tc_dim(dim).
struct InfonceBf16 {
  const void* rows = nullptr;
  const void* cols = nullptr;
  int64_t dp = 0;
};
constexpr int64_t kInfonceTcMaxDim = 256;
// The padded width of the tensor-core kernels for dim features (a multiple of 64), or 0 above kInfonceTcMaxDim.
int64_t infonce_tc_dim(int64_t dim);
// Whether the device has the bf16 tensor cores of kernel2 (compute capability 8.0 or later). The engine's switch
// is siam::cuda::infonce_tensor_cores() (engine/core/autocast.h).
bool infonce_tc_supported(int device);

// z (rows, D); keys (rows, D) and queue (cols, D) for the cross form (null for self). Writes pos (rows),
// lse (rows) and loss (1 element), all of dtype dt. tc (dt f32 only): run the logits on bf16 tensor cores.
void infonce_forward(DType dt, const InfonceArgs& a, const void* z, const void* keys, const void* queue, void* pos,
                     void* lse, void* loss, const InfonceBf16* tc = nullptr);
// dz (rows, D) = grad[0] * dL/dz from the forward's inputs and lse. grad: 1 element of dtype dt on the device.
void infonce_backward(DType dt, const InfonceArgs& a, const void* grad, const void* z, const void* keys,
                      const void* queue, const void* lse, void* dz, const InfonceBf16* tc = nullptr);

// ---- The pieces of the other forms (SupCon / V-view NT-Xent, CLIP, gathered), as kernels/cpu/infonce.h's
// infonce_rows_lse / infonce_grad_pass; engine/ops/siamese.cpp adds the O(M D) positive terms with engine ops.
// mask: rows device i64 (each row's masked column, or -1), or null (nothing masked). The same two kernels as
// the SimCLR form, with the per-row mask in place of the diagonal.

// lse (rows) = log sum_{j != mask[i]} exp(x_i . y_j / t); x (rows, D), y (cols, D).
// tc (dt f32 only): x and y as bf16 operands (InfonceBf16 rows = x, cols = y), on the tensor cores.
void infonce_rows_lse(DType dt, int64_t rows, int64_t cols, int64_t dim, double temperature, const void* x,
                      const void* y, const int64_t* mask, void* lse, const InfonceBf16* tc = nullptr);
// dx (rows, D) = grad[0] * scale / t * sum_{j != mask[i]} (exp(S_ij - a_i) + exp(S_ij - b_j)) y_j; a (rows) /
// b (cols) may be null (term absent), +inf entries drop their term; grad: 1 element of dt on the device.
void infonce_grad_pass(DType dt, int64_t rows, int64_t cols, int64_t dim, double temperature, const void* x,
                       const void* y, const int64_t* mask, const void* a, const void* b, const void* grad,
                       double scale, void* dx, const InfonceBf16* tc = nullptr);

}  // namespace siam::kernels::cuda

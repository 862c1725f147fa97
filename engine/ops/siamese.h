// Fused siamese losses (kernels/cpu/infonce.h, kernels/cpu/xcorr.h): one op each instead of a composition of
// normalize, matmul, a masked log_softmax and a gather over an M x M matrix.
#pragma once
#include "engine/tensor.h"

namespace siam {

// NT-Xent (SimCLR): z1, z2 (N, D) are two views of the same N samples. Rows [z1; z2] (2N, D), optionally
// L2-normalized (fused); logits z_i . z_j / temperature with self-similarity masked; row i's positive is the
// other view of the same sample. Returns the mean over the 2N rows (shape []). Never builds the 2N x 2N matrix.
Tensor nt_xent(const Tensor& z1, const Tensor& z2, double temperature, bool normalize = true);

// MoCo InfoNCE: queries q (N, D), positive keys k (N, D), negatives queue (K, D). Row i's logits are
// [q_i . k_i, q_i . queue_0, ..., q_i . queue_{K-1}] / temperature, the positive first; mean over rows.
// k and queue get no gradient (MoCo's keys come from the momentum encoder); all three are normalized when
// `normalize`.
Tensor moco_infonce(const Tensor& q, const Tensor& k, const Tensor& queue, double temperature, bool normalize = true);

// Barlow Twins: z1, z2 (N, D) standardized per feature over the batch (biased variance + eps, no affine);
// C = z1h^T z2h / N; sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 (shape []).
Tensor barlow_twins_loss(const Tensor& z1, const Tensor& z2, double lambda = 5e-3, double eps = 1e-5);

}  // namespace siam

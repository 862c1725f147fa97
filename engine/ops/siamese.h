// Fused siamese losses (kernels/cpu/infonce.h, kernels/cpu/xcorr.h): one op each instead of a composition of
// normalize, matmul, a masked log_softmax and a gather over an M x M matrix.
#pragma once
#include <vector>

#include "engine/ops/batch_stat_hooks.h"
#include "engine/tensor.h"

namespace siam {

// NT-Xent (SimCLR): z1, z2 (N, D) are two views of the same N samples. Rows [z1; z2] (2N, D), optionally
// L2-normalized (fused); logits z_i . z_j / temperature with self-similarity masked; row i's positive is the
// other view of the same sample. Returns the mean over the 2N rows (shape []). Never builds the 2N x 2N matrix.
// bf16/f16 inputs are computed in f32 (f32 accumulation); the loss is then f32 and the gradients bf16/f16.
Tensor nt_xent(const Tensor& z1, const Tensor& z2, double temperature, bool normalize = true);

// MoCo InfoNCE: queries q (N, D), positive keys k (N, D), negatives queue (K, D). Row i's logits are
// [q_i . k_i, q_i . queue_0, ..., q_i . queue_{K-1}] / temperature, the positive first; mean over rows.
// k and queue get no gradient (MoCo's keys come from the momentum encoder); all three are normalized when
// `normalize`. bf16/f16 inputs (all three alike) are computed in f32: f32 loss, gradient in q's dtype.
Tensor moco_infonce(const Tensor& q, const Tensor& k, const Tensor& queue, double temperature, bool normalize = true);

// Barlow Twins: z1, z2 (N, D) standardized per feature over the batch (biased variance + eps, no affine);
// C = z1h^T z2h / N; sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 (shape []). bf16/f16 inputs are
// computed in f32: f32 loss, gradients in the inputs' dtype.
Tensor barlow_twins_loss(const Tensor& z1, const Tensor& z2, double lambda = 5e-3, double eps = 1e-5);
// The distributed form (batch_stat_hooks.h): z1, z2 are this rank's rows; the batch means, variances and C
// are sums over every rank's rows through hooks.all_reduce_sum (three calls: 2 D, 2 D and D x D elements,
// in that order on every rank). Engine ops on the inputs' device, differentiated by autograd.
Tensor barlow_twins_loss(const Tensor& z1, const Tensor& z2, double lambda, double eps, const BatchStatHooks& hooks);

// Multi-positive InfoNCE (SupCon): rows z (M, D), labels (M) i64; row i's positives are the rows j != i with
// labels[j] == labels[i]; loss_i = -mean_{p in P(i)} (s_ip - lse_i), lse over all j != i; mean over rows with
// at least one positive. Multi-crop / V-view SimCLR is this with labels = sample index.
// (s = z_i . z_j / temperature on the normalized rows; no row with a positive: 0. Tiled, never M x M. bf16/f16
// inputs are computed in f32 and the loss is f32.)
Tensor supcon(const Tensor& z, const Tensor& labels, double temperature, bool normalize = true);
// V-view NT-Xent: views[v] (N, D); rows stacked view-major; positives = the same sample in the other views.
// (V >= 2; V = 2 is nt_xent.)
Tensor nt_xent_multi(const std::vector<Tensor>& views, double temperature, bool normalize = true);
// CLIP: a (N, D), b (N, D); symmetric cross-entropy over a b^T / t with the diagonal positive, mean of both directions.
Tensor clip_loss(const Tensor& a, const Tensor& b, double temperature, bool normalize = true);
// Distributed SimCLR form: local rows (n, D) of two views z1, z2 meeting the gathered columns of all ranks
// g1, g2 (n*W, D each, this rank's block at rows [offset, offset+n)). Loss = sum over local rows of the NT-Xent
// row losses / (2 n) (the local mean). Gradients flow to z1, z2 (row pass) AND to g1, g2 (column pass), so the
// all_gather backward (another session writes engine/dist) can sum them across ranks. With W=1, offset 0 and
// g = z it must equal nt_xent(z1, z2) in value and in total gradient.
// (Each rank normalizes the gathered columns itself when `normalize`; the mean of the W local losses is the
// global NT-Xent over 2 n W rows.)
Tensor nt_xent_gathered(const Tensor& z1, const Tensor& z2, const Tensor& g1, const Tensor& g2, int64_t offset,
                        double temperature, bool normalize = true);

}  // namespace siam

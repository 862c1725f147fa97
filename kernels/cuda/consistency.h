// BYOL / SimSiam's normalized MSE on CUDA: the twin of kernels/cpu/consistency.h's nmse_forward / nmse_backward
// (per-row arithmetic shared through kernels/common/nmse_math.h). Declared without CUDA headers; device
// pointers, contiguous row-major, the current stream; dt f32 or f64 (row sums in double either way).
// Versions (kernels in consistency.cu):
//   nmse_rows_kernel1     a group per row (kernels/cuda/rowwise.cuh: a warp, or the block for rows longer than
//                         1024): |p_i|, |z_i| and c_i (stats, 3 per row) and the row's loss 2 - 2 c_i.
//   nmse_mean_kernel1     one block: the mean of the row losses, combined in a fixed order (deterministic).
//   nmse_backward_kernel1 a group per row: dp, dz from stats and the upstream gradient read on the device.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

// stats (n, 3) and loss (1 element) of dt; row_loss: n doubles of device scratch.
void nmse_forward(DType dt, int64_t n, int64_t d, const void* p, const void* z, void* stats, double* row_loss,
                  void* loss);
// dp, dz (n, d) = grad[0] * dL/dp, dL/dz (either may be null); grad: 1 element of dt on the device.
void nmse_backward(DType dt, int64_t n, int64_t d, const void* grad, const void* p, const void* z, const void* stats,
                   void* dp, void* dz);

}  // namespace siam::kernels::cuda

// Layer norm on CUDA: the twin of kernels/cpu/norm.h's layer_norm_forward / layer_norm_backward (the same saved
// mean and invstd per row, rounded to the data type; sums in double here, in the data type on the CPU's SIMD
// path). x, y, gy, gx: (R, D) contiguous of dt (f32 or f64); w, b, gw, gb: (D) or null; mean, invstd: (R).
// Device pointers, the current device and stream.
// Versions (layer_norm.cu):
//   layer_norm_forward_kernel1 / layer_norm_backward_rows_kernel1: a group of threads per row (a warp for rows
//     up to 1024, the block for longer ones), two passes, group reductions in a fixed order.
//   layer_norm_param_grads_kernel1: 32 columns x 8 row groups per block (gw = sum_r gy xhat, gb = sum_r gy), the
//     groups combined in a fixed order (deterministic, no atomics).
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

void layer_norm_forward(DType dt, int64_t R, int64_t D, const void* x, const void* w, const void* b, double eps,
                        void* y, void* mean, void* invstd);
// gx, gw, gb may each be null.
void layer_norm_backward(DType dt, int64_t R, int64_t D, const void* x, const void* gy, const void* mean,
                         const void* invstd, const void* w, void* gx, void* gw, void* gb);

}  // namespace siam::kernels::cuda

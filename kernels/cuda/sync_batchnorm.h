// SyncBatchNorm on CUDA: the twin of engine/nn/sync_batchnorm.cpp's CPU path (per-channel arithmetic shared
// through kernels/common/sync_bn_math.h). engine/nn/sync_batchnorm.cpp runs, with every buffer on the device
// (no host copies; the collectives themselves block the host, as every NCCL collective of siam):
//   sync_bn_moments(x)               this rank's record [n, mean (C), M2 (C)] (2C + 1 doubles)
//   comm.all_gather(record)          (W, 2C + 1) doubles (NCCL for CUDA tensors)
//   sync_bn_merge                    global mean, invstd (C doubles) and count (1 double); the running statistics
//                                    updated in place (unbiased variance), as the CPU
//   sync_bn_apply                    y = x * sc + sh, sc = invstd w, sh = b - mean sc in the data type (as the CPU)
// and backward
//   sync_bn_grad_sums                (sum gy, sum gy xhat) per channel (2C doubles); gw, gb (this rank's) from them
//   comm.all_reduce(sums, sum)
//   sync_bn_input_grad               gx with the global sums and count read on the device
// x, gy, y, gx: (N, C, L) contiguous of dt (f32 or f64); w, b, running_mean, running_var: (C) of dt or null.
// Device pointers, the current device and stream.
// Versions (sync_batchnorm.cu): moments and grad sums kernel1: a block per channel over the N L values (two
//   passes in double, a fixed reduction order: deterministic); merge kernel1: a thread per channel, ranks in
//   order; apply and input grad kernel1: grid-stride element-wise.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace siam::kernels::cuda {

void sync_bn_moments(DType dt, int64_t N, int64_t C, int64_t L, const void* x, double* record);
void sync_bn_merge(DType dt, int world, int64_t C, const double* all, double eps, double momentum, void* running_mean,
                   void* running_var, double* mean, double* invstd, double* count);
void sync_bn_apply(DType dt, int64_t N, int64_t C, int64_t L, const void* x, const double* mean, const double* invstd,
                   const void* w, const void* b, void* y);
void sync_bn_grad_sums(DType dt, int64_t N, int64_t C, int64_t L, const void* x, const void* gy, const double* mean,
                       const double* invstd, double* sums, void* gw, void* gb);
void sync_bn_input_grad(DType dt, int64_t N, int64_t C, int64_t L, const void* x, const void* gy, const double* mean,
                        const double* invstd, const void* w, const double* sums, const double* count, void* gx);

}  // namespace siam::kernels::cuda

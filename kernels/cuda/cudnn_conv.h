// 2-D convolution on CUDA through cuDNN 9, NCHW, as kernels/cpu/conv2d.h (same geometry struct):
//   x  (N, C, H, W)  w (K, C/groups, R, S)  b (K) or null  y (N, K, OH, OW), all contiguous, element type t
//   conv2d_forward          y = conv(x, w) (+ b[k], cudnnAddTensor)
//   conv2d_backward_data    gx = d/dx (cudnnConvolutionBackwardData)
//   conv2d_backward_filter  gw = d/dw (cudnnConvolutionBackwardFilter)
//   conv2d_backward_bias    gb[k] = sum_{n,oh,ow} gy[n,k,oh,ow] (cudnnConvolutionBackwardBias)
// Types: f32 (exact FMA math unless allow_tf32: then cuDNN may use TF32 tensor cores), bf16 (tensor cores,
// f32 accumulation; bias and result bf16), f64.
//
// Algorithm selection, cached per (device, direction, type, TF32, geometry): by default cudnnFind*Ex times
// every algorithm once on the call's own buffers and the fastest is kept (what torch.backends.cudnn.benchmark
// does); with SIAM_CUDNN_HEURISTIC=1 in the environment the cheaper cudnnGet*_v7 heuristics pick instead.
// The search workspace is at most kConvMaxSearchWorkspace; the chosen algorithm's workspace comes from
// `scratch` at each call. conv_cache_stats() counts lookups and searches.
//
// API: cuDNN's legacy convolution API (cudnn_cnn.h), still complete in cuDNN 9 though marked deprecated
// there; docs/DECISIONS.md has the why and the way to the graph API. Stream: gemm_context.h's dense_stream.
#pragma once
#include <cstdint>

#include "kernels/cpu/conv2d.h"
#include "kernels/cuda/gemm.h"

namespace siam::kernels::cuda {

using kernels::cpu::Conv2dGeom;

constexpr size_t kConvMaxSearchWorkspace = size_t(1) << 30;

void conv2d_forward(const Conv2dGeom& g, DenseType t, bool allow_tf32, int device, const void* x, const void* w,
                    const void* b, void* y, const ScratchFn& scratch);
void conv2d_backward_data(const Conv2dGeom& g, DenseType t, bool allow_tf32, int device, const void* w,
                          const void* gy, void* gx, const ScratchFn& scratch);
void conv2d_backward_filter(const Conv2dGeom& g, DenseType t, bool allow_tf32, int device, const void* x,
                            const void* gy, void* gw, const ScratchFn& scratch);
// gy of type t; gb of type gb_type (f32 for bf16 gy is allowed: the reduction accumulates in f32).
void conv2d_backward_bias(const Conv2dGeom& g, DenseType t, int device, const void* gy, DenseType gb_type, void* gb);

DenseCacheStats conv_cache_stats();
void conv_cache_clear();

}  // namespace siam::kernels::cuda

// 2-D convolution on the CPU, NCHW, as torch.nn.functional.conv2d (cross-correlation).
//   x  (N, C, H, W)            input, contiguous
//   w  (K, C/groups, R, S)     weights, contiguous (K = output channels)
//   b  (K)                     bias, may be null
//   y  (N, K, OH, OW)          output, contiguous;  OH = (H + 2*ph - dh*(R-1) - 1) / sh + 1 (same for OW)
//   y[n,k,oh,ow] = b[k] + sum_{c in group(k), r, s} w[k, c - grp*C/groups, r, s]
//                                                   * x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw]
// Backward: gx = d/dx, gw = d/dw, gb[k] = sum_{n,oh,ow} gy[n,k,oh,ow]; any of gx/gw/gb may be null (skipped).
//
// Versions:
//   conv2d_forward_ref / conv2d_backward_ref   plain loops over every index; obviously right, slow.
//   conv2d_forward / conv2d_backward           (v1) im2col + BLAS gemm (sgemm/dgemm), chunks of images in parallel:
//       a chunk of B images is unfolded into col (C*R*S, B*OH*OW) and, per group,
//       y_chunk (K/g, B*OH*OW) = w_g (K/g, C/g*R*S) @ col_g. B = 1 for large maps, where col is built for a tile
//       of output rows at a time (about 1 MiB, so it stays in L2 between im2col and the GEMM's packing) and the
//       GEMM writes straight into y; B grows for small maps (up to 512 GEMM columns) and the result is staged.
//       1x1 stride-1 convs with B = 1 use the image itself as col. Chunks are split over OpenMP threads, each
//       with its own buffers and single-threaded BLAS (OpenBLAS-openmp runs single-threaded inside a parallel
//       region), so there is no oversubscription.
//       Backward: gw += gy_chunk @ col^T into per-thread accumulators (summed at the end). gx: for stride 1 a
//       forward conv of gy with the flipped, transposed weights (padding d*(k-1) - p), written in place;
//       otherwise gcol = w^T @ gy_chunk followed by a scatter-add col2im.
//       BLAS must use the right kernels: OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to
//       Prescott (SSE3) kernels, 5x slower; set OPENBLAS_CORETYPE=SkylakeX (docs/PERF.md).
#pragma once
#include <cstddef>
#include <cstdint>

namespace siam::kernels::cpu {

struct Conv2dGeom {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t K = 0, R = 0, S = 0;         // output channels, kernel height, kernel width
  int64_t OH = 0, OW = 0;              // output spatial size
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t groups = 1;
};

template <class T> void conv2d_forward_ref(const Conv2dGeom& g, const T* x, const T* w, const T* b, T* y);
template <class T>
void conv2d_backward_ref(const Conv2dGeom& g, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);

template <class T> void conv2d_forward(const Conv2dGeom& g, const T* x, const T* w, const T* b, T* y);
template <class T> void conv2d_backward(const Conv2dGeom& g, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);

// Peak bytes the fast path allocates (col/gcol/staging buffers per thread, gw accumulators), for benchmarks.
size_t conv2d_forward_workspace_bytes(const Conv2dGeom& g, size_t elem_size, int threads);
size_t conv2d_backward_workspace_bytes(const Conv2dGeom& g, size_t elem_size, int threads, bool need_gx, bool need_gw);

}  // namespace siam::kernels::cpu

// 2-D pooling on the CPU over P = N*C independent planes, as torch.nn.functional.
//   x (P, H, W) contiguous -> y (P, OH, OW) contiguous.
//   max_pool2d:  y[p,oh,ow] = max over the window rows oh*sh - ph + [0, kh), cols ow*sw - pw + [0, kw),
//                clipped to the input (padding never wins); idx[p,oh,ow] = ih*W + iw of the first maximum
//                (NaN propagates). Backward scatters gy into gx at idx.
//   avg_pool2d:  y = sum over the clipped window / divisor; divisor = window size clipped to the padded input
//                (count_include_pad) or to the input (otherwise), as PyTorch. Backward spreads gy / divisor.
//   adaptive_avg_pool2d: window rows [floor(oh*H/OH), ceil((oh+1)*H/OH)), same for cols; mean over it.
// Output sizes are computed by the caller (engine/ops/pool.cpp), including ceil_mode.
//
// Versions: *_ref (plain loops, recomputing every bound) and the fast path (planes split over OpenMP, window
// bounds hoisted per output row; adaptive pooling to 1x1 is a row mean).
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

struct Pool2dGeom {
  int64_t P = 0, H = 0, W = 0, OH = 0, OW = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  bool count_include_pad = true;
};

template <class T> void max_pool2d_forward_ref(const Pool2dGeom& g, const T* x, T* y, int64_t* idx);
template <class T> void max_pool2d_forward(const Pool2dGeom& g, const T* x, T* y, int64_t* idx);
// gx (P, H, W) is overwritten.
template <class T> void max_pool2d_backward(const Pool2dGeom& g, const T* gy, const int64_t* idx, T* gx);

template <class T> void avg_pool2d_forward_ref(const Pool2dGeom& g, const T* x, T* y);
template <class T> void avg_pool2d_forward(const Pool2dGeom& g, const T* x, T* y);
template <class T> void avg_pool2d_backward_ref(const Pool2dGeom& g, const T* gy, T* gx);
template <class T> void avg_pool2d_backward(const Pool2dGeom& g, const T* gy, T* gx);

// Only P, H, W, OH, OW of the geometry are used.
template <class T> void adaptive_avg_pool2d_forward_ref(const Pool2dGeom& g, const T* x, T* y);
template <class T> void adaptive_avg_pool2d_forward(const Pool2dGeom& g, const T* x, T* y);
template <class T> void adaptive_avg_pool2d_backward_ref(const Pool2dGeom& g, const T* gy, T* gx);
template <class T> void adaptive_avg_pool2d_backward(const Pool2dGeom& g, const T* gy, T* gx);

}  // namespace siam::kernels::cpu

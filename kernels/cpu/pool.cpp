#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace siam::kernels::cpu {

namespace {

constexpr int64_t kParallelMinElems = 16384;

inline int64_t ad_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline int64_t ad_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

// Average-pool window of one output position: clipped bounds and divisor.
struct AvgWin {
  int64_t h0, h1, w0, w1, div;
};
inline AvgWin avg_win(const Pool2dGeom& g, int64_t oh, int64_t ow) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = std::min(h0 + g.kh, g.H + g.ph), w1 = std::min(w0 + g.kw, g.W + g.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, g.H), w1 = std::min(w1, g.W);
  const int64_t div = g.count_include_pad ? padded : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, div};
}

}  // namespace

// ---------------------------------------------------------------------------------------------- max

template <class T> void max_pool2d_forward_ref(const Pool2dGeom& g, const T* x, T* y, int64_t* idx) {
  for (int64_t p = 0; p < g.P; ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t bi = -1;
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t ih = oh * g.sh - g.ph + i, iw = ow * g.sw - g.pw + j;
            if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
            const T v = x[(p * g.H + ih) * g.W + iw];
            if (bi < 0 || v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              bi = ih * g.W + iw;
            }
          }
        y[(p * g.OH + oh) * g.OW + ow] = best;
        idx[(p * g.OH + oh) * g.OW + ow] = bi;
      }
}

template <class T> void max_pool2d_forward(const Pool2dGeom& g, const T* x, T* y, int64_t* idx) {
#pragma omp parallel for schedule(static) if (g.P * g.H * g.W >= kParallelMinElems)
  for (int64_t p = 0; p < g.P; ++p) {
    const T* xp = x + p * g.H * g.W;
    T* yp = y + p * g.OH * g.OW;
    int64_t* ip = idx + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * g.sh - g.ph, 0), h1 = std::min(oh * g.sh - g.ph + g.kh, g.H);
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * g.sw - g.pw, 0), w1 = std::min(ow * g.sw - g.pw + g.kw, g.W);
        T best = -std::numeric_limits<T>::infinity();
        int64_t bi = h0 * g.W + w0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            const T v = xp[ih * g.W + iw];
            if (v > best || std::isnan(v)) {
              best = v;
              bi = ih * g.W + iw;
              if (std::isnan(v)) goto done;
            }
          }
      done:
        yp[oh * g.OW + ow] = best;
        ip[oh * g.OW + ow] = bi;
      }
    }
  }
}

template <class T> void max_pool2d_backward(const Pool2dGeom& g, const T* gy, const int64_t* idx, T* gx) {
#pragma omp parallel for schedule(static) if (g.P * g.H * g.W >= kParallelMinElems)
  for (int64_t p = 0; p < g.P; ++p) {
    T* gp = gx + p * g.H * g.W;
    std::memset(gp, 0, sizeof(T) * g.H * g.W);
    const T* gyp = gy + p * g.OH * g.OW;
    const int64_t* ip = idx + p * g.OH * g.OW;
    for (int64_t o = 0; o < g.OH * g.OW; ++o) gp[ip[o]] += gyp[o];
  }
}

// ---------------------------------------------------------------------------------------------- avg

template <class T> void avg_pool2d_forward_ref(const Pool2dGeom& g, const T* x, T* y) {
  for (int64_t p = 0; p < g.P; ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const AvgWin a = avg_win(g, oh, ow);
        double s = 0;
        for (int64_t ih = a.h0; ih < a.h1; ++ih)
          for (int64_t iw = a.w0; iw < a.w1; ++iw) s += x[(p * g.H + ih) * g.W + iw];
        y[(p * g.OH + oh) * g.OW + ow] = static_cast<T>(s / static_cast<double>(a.div));
      }
}

template <class T> void avg_pool2d_forward(const Pool2dGeom& g, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (g.P * g.H * g.W >= kParallelMinElems)
  for (int64_t p = 0; p < g.P; ++p) {
    const T* xp = x + p * g.H * g.W;
    T* yp = y + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const AvgWin a = avg_win(g, oh, ow);
        T s = 0;
        for (int64_t ih = a.h0; ih < a.h1; ++ih)
          for (int64_t iw = a.w0; iw < a.w1; ++iw) s += xp[ih * g.W + iw];
        yp[oh * g.OW + ow] = s / static_cast<T>(a.div);
      }
  }
}

template <class T> void avg_pool2d_backward_ref(const Pool2dGeom& g, const T* gy, T* gx) {
  std::fill(gx, gx + g.P * g.H * g.W, T(0));
  for (int64_t p = 0; p < g.P; ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const AvgWin a = avg_win(g, oh, ow);
        for (int64_t ih = a.h0; ih < a.h1; ++ih)
          for (int64_t iw = a.w0; iw < a.w1; ++iw)
            gx[(p * g.H + ih) * g.W + iw] += gy[(p * g.OH + oh) * g.OW + ow] / static_cast<T>(a.div);
      }
}

template <class T> void avg_pool2d_backward(const Pool2dGeom& g, const T* gy, T* gx) {
#pragma omp parallel for schedule(static) if (g.P * g.H * g.W >= kParallelMinElems)
  for (int64_t p = 0; p < g.P; ++p) {
    T* gp = gx + p * g.H * g.W;
    std::memset(gp, 0, sizeof(T) * g.H * g.W);
    const T* gyp = gy + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const AvgWin a = avg_win(g, oh, ow);
        const T v = gyp[oh * g.OW + ow] / static_cast<T>(a.div);
        for (int64_t ih = a.h0; ih < a.h1; ++ih)
          for (int64_t iw = a.w0; iw < a.w1; ++iw) gp[ih * g.W + iw] += v;
      }
  }
}

// ---------------------------------------------------------------------------------------------- adaptive avg

template <class T> void adaptive_avg_pool2d_forward_ref(const Pool2dGeom& g, const T* x, T* y) {
  for (int64_t p = 0; p < g.P; ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t h0 = ad_start(oh, g.H, g.OH), h1 = ad_end(oh, g.H, g.OH);
        const int64_t w0 = ad_start(ow, g.W, g.OW), w1 = ad_end(ow, g.W, g.OW);
        double s = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) s += x[(p * g.H + ih) * g.W + iw];
        y[(p * g.OH + oh) * g.OW + ow] = static_cast<T>(s / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
}

template <class T> void adaptive_avg_pool2d_forward(const Pool2dGeom& g, const T* x, T* y) {
  const int64_t HW = g.H * g.W;
  if (g.OH == 1 && g.OW == 1) {  // global average pool: a row mean per plane
    const T inv = T(1) / static_cast<T>(HW);
#pragma omp parallel for schedule(static) if (g.P * HW >= kParallelMinElems)
    for (int64_t p = 0; p < g.P; ++p) {
      const T* xp = x + p * HW;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < HW; ++i) s += xp[i];
      y[p] = s * inv;
    }
    return;
  }
#pragma omp parallel for schedule(static) if (g.P * HW >= kParallelMinElems)
  for (int64_t p = 0; p < g.P; ++p) {
    const T* xp = x + p * HW;
    T* yp = y + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t h0 = ad_start(oh, g.H, g.OH), h1 = ad_end(oh, g.H, g.OH);
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t w0 = ad_start(ow, g.W, g.OW), w1 = ad_end(ow, g.W, g.OW);
        T s = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) s += xp[ih * g.W + iw];
        yp[oh * g.OW + ow] = s / static_cast<T>((h1 - h0) * (w1 - w0));
      }
    }
  }
}

template <class T> void adaptive_avg_pool2d_backward_ref(const Pool2dGeom& g, const T* gy, T* gx) {
  std::fill(gx, gx + g.P * g.H * g.W, T(0));
  for (int64_t p = 0; p < g.P; ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t h0 = ad_start(oh, g.H, g.OH), h1 = ad_end(oh, g.H, g.OH);
        const int64_t w0 = ad_start(ow, g.W, g.OW), w1 = ad_end(ow, g.W, g.OW);
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw)
            gx[(p * g.H + ih) * g.W + iw] += gy[(p * g.OH + oh) * g.OW + ow] / static_cast<T>((h1 - h0) * (w1 - w0));
      }
}

template <class T> void adaptive_avg_pool2d_backward(const Pool2dGeom& g, const T* gy, T* gx) {
  const int64_t HW = g.H * g.W;
  if (g.OH == 1 && g.OW == 1) {
    const T inv = T(1) / static_cast<T>(HW);
#pragma omp parallel for schedule(static) if (g.P * HW >= kParallelMinElems)
    for (int64_t p = 0; p < g.P; ++p) {
      const T v = gy[p] * inv;
      T* gp = gx + p * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) gp[i] = v;
    }
    return;
  }
#pragma omp parallel for schedule(static) if (g.P * HW >= kParallelMinElems)
  for (int64_t p = 0; p < g.P; ++p) {
    T* gp = gx + p * HW;
    std::memset(gp, 0, sizeof(T) * HW);
    const T* gyp = gy + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t h0 = ad_start(oh, g.H, g.OH), h1 = ad_end(oh, g.H, g.OH);
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t w0 = ad_start(ow, g.W, g.OW), w1 = ad_end(ow, g.W, g.OW);
        const T v = gyp[oh * g.OW + ow] / static_cast<T>((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) gp[ih * g.W + iw] += v;
      }
    }
  }
}

#define SIAM_POOL_INST(T)                                                                \
  template void max_pool2d_forward_ref<T>(const Pool2dGeom&, const T*, T*, int64_t*);    \
  template void max_pool2d_forward<T>(const Pool2dGeom&, const T*, T*, int64_t*);        \
  template void max_pool2d_backward<T>(const Pool2dGeom&, const T*, const int64_t*, T*); \
  template void avg_pool2d_forward_ref<T>(const Pool2dGeom&, const T*, T*);              \
  template void avg_pool2d_forward<T>(const Pool2dGeom&, const T*, T*);                  \
  template void avg_pool2d_backward_ref<T>(const Pool2dGeom&, const T*, T*);             \
  template void avg_pool2d_backward<T>(const Pool2dGeom&, const T*, T*);                 \
  template void adaptive_avg_pool2d_forward_ref<T>(const Pool2dGeom&, const T*, T*);     \
  template void adaptive_avg_pool2d_forward<T>(const Pool2dGeom&, const T*, T*);         \
  template void adaptive_avg_pool2d_backward_ref<T>(const Pool2dGeom&, const T*, T*);    \
  template void adaptive_avg_pool2d_backward<T>(const Pool2dGeom&, const T*, T*);
SIAM_POOL_INST(float)
SIAM_POOL_INST(double)
#undef SIAM_POOL_INST

}  // namespace siam::kernels::cpu

// The view kernels; see augment.h for the formulas and the layout.
#include "kernels/cpu/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace siam::kernels::cpu {

namespace {

// PyTorch's upsample_bilinear2d index math (align_corners=False, no explicit scale): for each output
// position, the two source taps (offset into the crop) and their weights.
struct Taps {
  std::vector<int> i0, i1;
  std::vector<float> l0, l1;
};
void linear_taps(int in, int out, Taps& t) {
  t.i0.resize(out), t.i1.resize(out), t.l0.resize(out), t.l1.resize(out);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int d = 0; d < out; ++d) {
    float src = std::max(scale * (static_cast<float>(d) + 0.5f) - 0.5f, 0.0f);
    int i = static_cast<int>(src);
    int step = i < in - 1 ? 1 : 0;
    float l1 = std::min(std::max(src - static_cast<float>(i), 0.0f), 1.0f);
    t.i0[d] = i;
    t.i1[d] = i + step;
    t.l1[d] = l1;
    t.l0[d] = 1.0f - l1;
  }
}

inline float gray_of(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

}  // namespace

void resized_crop(const uint8_t* src, int H, int W, int C, CropBox box, float* dst, int OH, int OW) {
  (void)H;
  thread_local Taps ty, tx;
  linear_taps(box.height, OH, ty);
  linear_taps(box.width, OW, tx);
  // Horizontal pass over the source rows the output needs (ty.i0[0] .. ty.i1[OH - 1]), into planar
  // hbuf (C, rows, OW); then the vertical pass writes each output row as a blend of two hbuf rows.
  const int r_lo = ty.i0[0], r_hi = ty.i1[static_cast<size_t>(OH) - 1], rows = r_hi - r_lo + 1;
  thread_local std::vector<float> hbuf;
  hbuf.resize(static_cast<size_t>(C) * rows * OW);
  constexpr float inv255 = 1.0f / 255.0f;
  for (int r = 0; r < rows; ++r) {
    const uint8_t* s = src + (static_cast<int64_t>(box.top + r_lo + r) * W + box.left) * C;
    if (C == 1) {
      float* h = hbuf.data() + static_cast<int64_t>(r) * OW;
      for (int ox = 0; ox < OW; ++ox) h[ox] = (tx.l0[ox] * s[tx.i0[ox]] + tx.l1[ox] * s[tx.i1[ox]]) * inv255;
    } else {
      for (int ox = 0; ox < OW; ++ox) {
        const uint8_t* a = s + tx.i0[ox] * C;
        const uint8_t* b = s + tx.i1[ox] * C;
        const float w0 = tx.l0[ox] * inv255, w1 = tx.l1[ox] * inv255;
        for (int c = 0; c < C; ++c) hbuf[(static_cast<size_t>(c) * rows + r) * OW + ox] = w0 * a[c] + w1 * b[c];
      }
    }
  }
  const int64_t plane = static_cast<int64_t>(OH) * OW;
  for (int c = 0; c < C; ++c) {
    const float* hb = hbuf.data() + static_cast<int64_t>(c) * rows * OW;
    for (int oy = 0; oy < OH; ++oy) {
      const float* a = hb + static_cast<int64_t>(ty.i0[oy] - r_lo) * OW;
      const float* b = hb + static_cast<int64_t>(ty.i1[oy] - r_lo) * OW;
      const float h0 = ty.l0[oy], h1 = ty.l1[oy];
      float* d = dst + c * plane + static_cast<int64_t>(oy) * OW;
      for (int ox = 0; ox < OW; ++ox) d[ox] = h0 * a[ox] + h1 * b[ox];
    }
  }
}

void resized_crop_f32(const float* src, int C, int H, int W, CropBox box, float* dst, int OH, int OW) {
  Taps ty, tx;
  linear_taps(box.height, OH, ty);
  linear_taps(box.width, OW, tx);
  for (int c = 0; c < C; ++c) {
    const float* s = src + static_cast<int64_t>(c) * H * W;
    float* d = dst + static_cast<int64_t>(c) * OH * OW;
    for (int oy = 0; oy < OH; ++oy) {
      const float* r0 = s + static_cast<int64_t>(box.top + ty.i0[oy]) * W + box.left;
      const float* r1 = s + static_cast<int64_t>(box.top + ty.i1[oy]) * W + box.left;
      for (int ox = 0; ox < OW; ++ox) {
        const int a = tx.i0[ox], b = tx.i1[ox];
        d[oy * OW + ox] = ty.l0[oy] * (tx.l0[ox] * r0[a] + tx.l1[ox] * r0[b]) +
                          ty.l1[oy] * (tx.l0[ox] * r1[a] + tx.l1[ox] * r1[b]);
      }
    }
  }
}

void hflip(float* x, int C, int H, int W) {
  for (int64_t r = 0; r < static_cast<int64_t>(C) * H; ++r) std::reverse(x + r * W, x + (r + 1) * W);
}

void adjust_brightness(float* x, int C, int H, int W, float factor) {
  const int64_t n = static_cast<int64_t>(C) * H * W;
  for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(factor * x[i], 0.0f), 1.0f);
}

void adjust_contrast(float* x, int C, int H, int W, float factor) {
  const int64_t plane = static_cast<int64_t>(H) * W;
  double sum = 0;
  for (int y = 0; y < H; ++y) {  // f32 within a row (vectorizes), f64 across rows
    const float* r = x + static_cast<int64_t>(y) * W;
    float part = 0.0f;
    if (C >= 3) {
      for (int j = 0; j < W; ++j) part += gray_of(r[j], r[plane + j], r[2 * plane + j]);
    } else {
      for (int j = 0; j < W; ++j) part += r[j];
    }
    sum += part;
  }
  const float m = static_cast<float>(sum / static_cast<double>(plane));
  const float bias = (1.0f - factor) * m;
  const int64_t n = C * plane;
  for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(factor * x[i] + bias, 0.0f), 1.0f);
}

void adjust_saturation(float* x, int C, int H, int W, float factor) {
  if (C < 3) return;
  const int64_t plane = static_cast<int64_t>(H) * W;
  float *r = x, *g = x + plane, *b = x + 2 * plane;
  const float keep = 1.0f - factor;
  for (int64_t i = 0; i < plane; ++i) {
    const float l = keep * gray_of(r[i], g[i], b[i]);
    r[i] = std::min(std::max(factor * r[i] + l, 0.0f), 1.0f);
    g[i] = std::min(std::max(factor * g[i] + l, 0.0f), 1.0f);
    b[i] = std::min(std::max(factor * b[i] + l, 0.0f), 1.0f);
  }
}

// -fno-trapping-math for this function only: without it GCC will not if-convert and vectorize the selects
// below (it changes no result: none of the operations can trap on values in [0, 1]; divisors are never 0).
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
static inline float clamp01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static void hue_planes(float* __restrict R, float* __restrict G, float* __restrict B, int64_t plane, float hue_factor) {
  // torchvision's _rgb2hsv, (h + f) mod 1 (torch.remainder), _hsv2rgb, written with selects only.
  // h / 6 + 1 lies in [5/6, 11/6], where fmod(h, 1) = h - floor(h) exactly.
  // _hsv2rgb's sectors: 0 (v,t,p) 1 (q,v,p) 2 (p,v,t) 3 (p,q,v) 4 (t,p,v) 5 (v,p,q).
  for (int64_t i = 0; i < plane; ++i) {
    const float r = R[i], g = G[i], b = B[i];
    const float mx = r > g ? r : g, mn = r < g ? r : g;
    const float maxc = mx > b ? mx : b, minc = mn < b ? mn : b;
    const float cr = maxc - minc;
    const bool eqc = cr == 0.0f;
    const float s = cr / (eqc ? 1.0f : maxc);
    const float div = eqc ? 1.0f : cr;
    const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
    const float hr = bc - gc, hg = 2.0f + rc - bc, hb = 4.0f + gc - rc;
    float h = maxc == r ? hr : (maxc == g ? hg : hb);
    h = h / 6.0f + 1.0f;
    h = h - __builtin_floorf(h);
    h = h + hue_factor;
    h = h - __builtin_floorf(h);
    h = h >= 1.0f ? 0.0f : h;
    const float v = maxc;
    const float h6 = h * 6.0f;
    const float fi = __builtin_floorf(h6);
    const float f = h6 - fi;
    const float p = clamp01(v * (1.0f - s));
    const float q = clamp01(v * (1.0f - s * f));
    const float t = clamp01(v * (1.0f - s * (1.0f - f)));
    const float sector = fi >= 6.0f ? fi - 6.0f : fi;
    float o0 = p, o1 = p, o2 = p;
    o0 = sector == 4.0f ? t : o0; o0 = sector == 1.0f ? q : o0; o0 = (sector == 0.0f) | (sector == 5.0f) ? v : o0;
    o1 = sector == 3.0f ? q : o1; o1 = sector == 0.0f ? t : o1; o1 = (sector == 1.0f) | (sector == 2.0f) ? v : o1;
    o2 = sector == 5.0f ? q : o2; o2 = sector == 2.0f ? t : o2; o2 = (sector == 3.0f) | (sector == 4.0f) ? v : o2;
    R[i] = o0; G[i] = o1; B[i] = o2;
  }
}

void adjust_hue(float* x, int C, int H, int W, float hue_factor) {
  if (C < 3) return;
  const int64_t plane = static_cast<int64_t>(H) * W;
  hue_planes(x, x + plane, x + 2 * plane, plane, hue_factor);
}
#pragma GCC pop_options

void grayscale(float* x, int C, int H, int W) {
  if (C < 3) return;
  const int64_t plane = static_cast<int64_t>(H) * W;
  float *r = x, *g = x + plane, *b = x + 2 * plane;
  for (int64_t i = 0; i < plane; ++i) r[i] = g[i] = b[i] = gray_of(r[i], g[i], b[i]);
}

void gaussian_kernel1d(int ksize, float sigma, float* k) {
  const float half = (static_cast<float>(ksize) - 1.0f) * 0.5f;
  float sum = 0;
  for (int i = 0; i < ksize; ++i) {
    // torch.linspace(-half, half, ksize)
    const float x = ksize == 1 ? -half : -half + (2.0f * half) * static_cast<float>(i) / static_cast<float>(ksize - 1);
    const float z = x / sigma;
    k[i] = std::exp(-0.5f * z * z);
    sum += k[i];
  }
  for (int i = 0; i < ksize; ++i) k[i] /= sum;
}

void gaussian_blur(float* x, int C, int H, int W, int ksize, float sigma, float* scratch) {
  const int half = ksize / 2;
  float* k = scratch;                                  // (ksize)
  float* tmp = scratch + ksize;                        // (H, W) horizontal pass
  float* line = tmp + static_cast<int64_t>(H) * W;     // (W + 2 * half) one padded row
  gaussian_kernel1d(ksize, sigma, k);
  thread_local std::vector<int> rows;
  rows.resize(static_cast<size_t>(H) + 2 * half);
  for (int i = 0; i < H + 2 * half; ++i) rows[i] = reflect_index(i - half, H);
  const int64_t plane = static_cast<int64_t>(H) * W;
  for (int c = 0; c < C; ++c) {
    float* p = x + c * plane;
    // horizontal: tmp[y, j] = sum_t k[t] * p[y, reflect(j - half + t)]
    for (int y = 0; y < H; ++y) {
      const float* src = p + static_cast<int64_t>(y) * W;
      std::copy(src, src + W, line + half);
      for (int j = 0; j < half; ++j) {
        line[j] = src[reflect_index(j - half, W)];
        line[half + W + j] = src[reflect_index(W + j, W)];
      }
      float* out = tmp + static_cast<int64_t>(y) * W;
      for (int j = 0; j < W; ++j) out[j] = 0.0f;
      for (int t = 0; t < ksize; ++t) {
        const float kt = k[t];
        const float* l = line + t;
        for (int j = 0; j < W; ++j) out[j] += kt * l[j];
      }
    }
    // vertical: p[y, j] = sum_t k[t] * tmp[reflect(y - half + t), j]
    for (int y = 0; y < H; ++y) {
      float* out = p + static_cast<int64_t>(y) * W;
      for (int j = 0; j < W; ++j) out[j] = 0.0f;
      for (int t = 0; t < ksize; ++t) {
        const float kt = k[t];
        const float* src = tmp + static_cast<int64_t>(rows[y + t]) * W;
        for (int j = 0; j < W; ++j) out[j] += kt * src[j];
      }
    }
  }
}

void solarize(float* x, int C, int H, int W, float threshold) {
  const int64_t n = static_cast<int64_t>(C) * H * W;
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= threshold ? 1.0f - x[i] : x[i];
}

void normalize(float* x, int C, int H, int W, const float* mean, const float* std) {
  const int64_t plane = static_cast<int64_t>(H) * W;
  for (int c = 0; c < C; ++c) {
    const float m = mean[c], inv = 1.0f / std[c];
    float* p = x + c * plane;
    for (int64_t i = 0; i < plane; ++i) p[i] = (p[i] - m) * inv;
  }
}

void pad_crop(float* x, int C, int H, int W, int pad, int top, int left, bool reflect, float* scratch) {
  const int dy = top - pad, dx = left - pad;  // x'[y, j] = x[y + dy, j + dx]
  if (dy == 0 && dx == 0) return;
  const int64_t plane = static_cast<int64_t>(H) * W;
  for (int c = 0; c < C; ++c) {
    float* p = x + c * plane;
    std::copy(p, p + plane, scratch);
    for (int y = 0; y < H; ++y) {
      float* out = p + static_cast<int64_t>(y) * W;
      int sy = y + dy;
      if (sy < 0 || sy >= H) {
        if (!reflect) {
          std::fill(out, out + W, 0.0f);
          continue;
        }
        sy = reflect_index(sy, H);
      }
      const float* src = scratch + static_cast<int64_t>(sy) * W;
      for (int j = 0; j < W; ++j) {
        const int sx = j + dx;
        if (sx >= 0 && sx < W) out[j] = src[sx];
        else out[j] = reflect ? src[reflect_index(sx, W)] : 0.0f;
      }
    }
  }
}

}  // namespace siam::kernels::cpu

// RandAugment's geometric and histogram kernels; see randaugment.h for the formulas.
#include "kernels/cpu/randaugment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace siam::kernels::cpu {

void inverse_affine_matrix(double cx, double cy, double angle, double tx, double ty, double scale, double shear_x,
                           double shear_y, double m[6]) {
  constexpr double kDeg = 3.14159265358979323846 / 180.0;
  const double rot = angle * kDeg, sx = shear_x * kDeg, sy = shear_y * kDeg;
  // RSS without scaling
  const double a = std::cos(rot - sy) / std::cos(sy);
  const double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
  const double c = std::sin(rot - sy) / std::cos(sy);
  const double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
  // inverse of the rotation-scale-shear (det 1), then of the center and translation: C * RSS^-1 * C^-1 * T^-1
  m[0] = d / scale, m[1] = -b / scale, m[2] = 0.0;
  m[3] = -c / scale, m[4] = a / scale, m[5] = 0.0;
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
}

void affine_nearest(float* x, int C, int H, int W, const double matrix[6], float* scratch) {
  // _gen_affine_grid: theta (f32) / [W / 2, H / 2], applied to the base grid; grid_sample unnormalizes with
  // ((g + 1) * size - 1) / 2 and rounds half to even.
  const float hw = 0.5f * static_cast<float>(W), hh = 0.5f * static_cast<float>(H);
  const float r00 = static_cast<float>(matrix[0]) / hw, r01 = static_cast<float>(matrix[1]) / hw,
              r02 = static_cast<float>(matrix[2]) / hw;
  const float r10 = static_cast<float>(matrix[3]) / hh, r11 = static_cast<float>(matrix[4]) / hh,
              r12 = static_cast<float>(matrix[5]) / hh;
  const int64_t plane = static_cast<int64_t>(H) * W;
  int* src = reinterpret_cast<int*>(scratch);  // (H, W) source offsets, -1 outside; sizeof(int) == sizeof(float)
  static_assert(sizeof(int) == sizeof(float));
  for (int i = 0; i < H; ++i) {
    const float yb = -hh + 0.5f + static_cast<float>(i);
    for (int j = 0; j < W; ++j) {
      const float xb = -hw + 0.5f + static_cast<float>(j);
      const float gx = xb * r00 + yb * r01 + r02, gy = xb * r10 + yb * r11 + r12;
      const float fx = std::nearbyint(((gx + 1.0f) * static_cast<float>(W) - 1.0f) * 0.5f);
      const float fy = std::nearbyint(((gy + 1.0f) * static_cast<float>(H) - 1.0f) * 0.5f);
      const bool in = fx >= 0.0f && fx < static_cast<float>(W) && fy >= 0.0f && fy < static_cast<float>(H);
      src[static_cast<int64_t>(i) * W + j] = in ? static_cast<int>(fy) * W + static_cast<int>(fx) : -1;
    }
  }
  // The map is shared by the channels; each plane is gathered through a copy of itself.
  thread_local std::vector<float> tmp;
  tmp.resize(static_cast<size_t>(plane));
  for (int c = 0; c < C; ++c) {
    float* p = x + c * plane;
    std::memcpy(tmp.data(), p, sizeof(float) * static_cast<size_t>(plane));
    for (int64_t k = 0; k < plane; ++k) p[k] = src[k] >= 0 ? tmp[static_cast<size_t>(src[k])] : 0.0f;
  }
}

void adjust_sharpness(float* x, int C, int H, int W, float factor, float* scratch) {
  if (H <= 2 || W <= 2) return;
  const int64_t plane = static_cast<int64_t>(H) * W;
  const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
  const float keep = 1.0f - factor;
  for (int c = 0; c < C; ++c) {
    float* p = x + c * plane;
    float* b = scratch;  // the degenerate (blurred) image
    std::memcpy(b, p, sizeof(float) * static_cast<size_t>(plane));
    for (int i = 1; i < H - 1; ++i)
      for (int j = 1; j < W - 1; ++j) {
        const float* u = p + static_cast<int64_t>(i - 1) * W + j;
        const float* m = u + W;
        const float* d = m + W;
        b[static_cast<int64_t>(i) * W + j] = k1 * u[-1] + k1 * u[0] + k1 * u[1] + k1 * m[-1] + k5 * m[0] + k1 * m[1] +
                                             k1 * d[-1] + k1 * d[0] + k1 * d[1];
      }
    for (int64_t k = 0; k < plane; ++k) p[k] = std::min(std::max(factor * p[k] + keep * b[k], 0.0f), 1.0f);
  }
}

void posterize(float* x, int C, int H, int W, int bits) {
  const int mask = bits <= 0 ? 0 : (0xFF & ~((1 << (8 - bits)) - 1));
  const int64_t n = static_cast<int64_t>(C) * H * W;
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(to_u8_level(x[i]) & mask) * (1.0f / 255.0f);
}

void autocontrast(float* x, int C, int H, int W) {
  const int64_t plane = static_cast<int64_t>(H) * W;
  for (int c = 0; c < C; ++c) {
    float* p = x + c * plane;
    float lo = p[0], hi = p[0];
    for (int64_t k = 1; k < plane; ++k) lo = std::min(lo, p[k]), hi = std::max(hi, p[k]);
    const float scale = 1.0f / (hi - lo);
    if (!std::isfinite(scale)) continue;  // a flat channel: minimum 0, scale 1 (clamping changes nothing in [0, 1])
    for (int64_t k = 0; k < plane; ++k) p[k] = std::min(std::max((p[k] - lo) * scale, 0.0f), 1.0f);
  }
}

void equalize(float* x, int C, int H, int W) {
  const int64_t plane = static_cast<int64_t>(H) * W;
  for (int c = 0; c < C; ++c) {
    float* p = x + c * plane;
    int64_t hist[256] = {0};
    for (int64_t k = 0; k < plane; ++k) ++hist[to_u8_level(p[k])];
    int64_t last = 255;  // the last non-zero bin
    while (last > 0 && hist[last] == 0) --last;
    int64_t sum = 0;
    for (int v = 0; v < last; ++v) sum += hist[v];  // every non-zero bin but the last (zeros add nothing)
    const int64_t step = sum / 255;
    if (step == 0) continue;  // torchvision returns the channel unchanged
    float lut[256];
    int64_t cum = 0;
    for (int v = 0; v < 256; ++v) {
      lut[v] = static_cast<float>(std::min<int64_t>((cum + step / 2) / step, 255)) * (1.0f / 255.0f);
      cum += hist[v];
    }
    for (int64_t k = 0; k < plane; ++k) p[k] = lut[to_u8_level(p[k])];
  }
}

}  // namespace siam::kernels::cpu

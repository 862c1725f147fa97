// The image kernels of RandAugment (torchvision.transforms.RandAugment) that the color jitter kernels in
// augment.h do not already provide. engine/data/randaugment.h samples the ops and their magnitudes.
//
// Layout and range as augment.h: f32 planar (C, H, W), values in [0, 1]. Each follows torchvision's tensor
// implementation (torchvision.transforms.functional_tensor / _functional_tensor, v0.15+) on float images:
//   inverse_affine_matrix  torchvision's _get_inverse_affine_matrix(center, angle, translate, scale, shear):
//                          the 2x3 matrix mapping an output point to its source point, both measured from
//                          the image center in pixels (center = offset of the rotation/shear center from it)
//   affine_nearest         F_t.affine with interpolation NEAREST and fill 0 (RandAugment's defaults):
//                          _gen_affine_grid (pixel centers, x_b = j + 0.5 - W / 2), then grid_sample(
//                          mode=nearest, padding_mode=zeros, align_corners=False): src = round-half-even(
//                          m0 x_b + m1 y_b + m2 + W / 2 - 0.5), 0 where src falls outside; the arithmetic in
//                          f32 in torchvision's order
//   adjust_sharpness       blend(x, blur3x3(x), f) = clamp(f x + (1 - f) b, 0, 1), b the 3x3 kernel
//                          [[1,1,1],[1,5,1],[1,1,1]] / 13 on interior pixels and x itself on the border; the
//                          identity when H <= 2 or W <= 2
//   posterize              q & ~(2^(8 - bits) - 1) on q = round(255 x) (torchvision requires u8 here)
//   autocontrast           per channel (x - min) / (max - min), clamped; unchanged when max == min
//   equalize               per channel on q = round(255 x): histogram h, step = floor(sum of h over the
//                          non-zero bins but the last / 255); step 0 -> unchanged (not
//                          quantized); else
//                          lut[v] = min(255, floor((cumsum(h)[v - 1] + floor(step / 2)) / step)), lut[0] = 0
// (Solarize, brightness, contrast and saturation ("Color") are augment.h's solarize and adjust_*.)
// Versions: 1 (this file): scalar loops, one image per call.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

// angle and shear in degrees; out: {m0, m1, m2, m3, m4, m5}, src_x = m0 x + m1 y + m2, src_y = m3 x + m4 y + m5.
void inverse_affine_matrix(double center_x, double center_y, double angle, double translate_x, double translate_y,
                           double scale, double shear_x, double shear_y, double out[6]);
// x (C, H, W) in place; scratch: H * W floats.
void affine_nearest(float* x, int C, int H, int W, const double matrix[6], float* scratch);
// scratch: H * W floats.
void adjust_sharpness(float* x, int C, int H, int W, float factor, float* scratch);
void posterize(float* x, int C, int H, int W, int bits);  // bits in [0, 8]
void autocontrast(float* x, int C, int H, int W);
void equalize(float* x, int C, int H, int W);

// The u8 level of a [0, 1] value: round(255 x), clamped (what ToTensor's inverse gives back).
inline uint8_t to_u8_level(float v) {
  const float s = v * 255.0f + 0.5f;
  return static_cast<uint8_t>(s <= 0.0f ? 0 : (s >= 255.0f ? 255 : static_cast<int>(s)));
}

}  // namespace siam::kernels::cpu

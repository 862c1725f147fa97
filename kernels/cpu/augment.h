// Image kernels of the view pipeline (engine/data/views.h draws their parameters).
//
// Layout: a view is f32, planar (C, H, W), values in [0, 1] until normalize(). The source image is u8
// interleaved (H, W, C) as decoded; resized_crop() is the one kernel that reads it, converting as it
// samples, so every later op works on contiguous planes (cheap per-channel loops, and the (C, H, W) planes
// are copied as they are into the (B, C, H, W) batch).
//
// Each op follows torchvision's tensor implementation (torchvision.transforms.functional_tensor, v0.14) on
// float images, so a pipeline given the same parameters computes the same image up to f32 rounding:
//   resized_crop       crop then bilinear resize, antialias=False, align_corners=False (PyTorch's
//                      upsample_bilinear2d: src = max((dst + 0.5) * in / out - 0.5, 0)), u8 -> f32 / 255
//   hflip              x' = x[W - 1 - j]
//   adjust_brightness  clamp(f * x, 0, 1)
//   adjust_contrast    clamp(f * x + (1 - f) * m, 0, 1), m = mean of the grayscale image (of x when C = 1)
//   adjust_saturation  clamp(f * x + (1 - f) * gray(x), 0, 1); identity when C = 1
//   adjust_hue         RGB -> HSV, h = (h + f) mod 1, HSV -> RGB (torchvision's _rgb2hsv/_hsv2rgb); identity when C = 1
//   grayscale          every channel <- 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2; torchvision's tensor path
//                      writes 0.2989 for R, PIL uses 299/1000); identity when C = 1
//   gaussian_blur      separable, 1-D kernel exp(-x^2 / (2 sigma^2)) normalized over x = -(k-1)/2 .. (k-1)/2,
//                      reflect padding (the edge pixel is not repeated)
//   solarize           x >= t ? 1 - x : x
//   pad_crop           RandomCrop(size, padding=p, padding_mode=reflect|constant 0) at offset (top, left) of the
//                      padded image: x'[y, j] = x[reflect(y + top - p), reflect(j + left - p)] (0 outside for
//                      constant); a translation by (p - top, p - left) pixels
//   normalize          (x - mean[c]) / std[c]
// Versions: 1 (this file): scalar loops written so GCC vectorizes the inner ones; one image per call.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// src (H, W, C) u8 -> dst (C, OH, OW) f32 in [0, 1]: the box of src resized to (OH, OW).
void resized_crop(const uint8_t* src, int H, int W, int C, CropBox box, float* dst, int OH, int OW);
// The same on an f32 (C, H, W) source (no /255), used by multi-step pipelines and tests.
void resized_crop_f32(const float* src, int C, int H, int W, CropBox box, float* dst, int OH, int OW);

void hflip(float* x, int C, int H, int W);                  // (C, H, W) in place
void adjust_brightness(float* x, int C, int H, int W, float factor);
void adjust_contrast(float* x, int C, int H, int W, float factor);
void adjust_saturation(float* x, int C, int H, int W, float factor);
void adjust_hue(float* x, int C, int H, int W, float hue_factor);  // hue_factor in [-0.5, 0.5]
void grayscale(float* x, int C, int H, int W);
// The normalized 1-D kernel (k values) of gaussian_blur.
void gaussian_kernel1d(int ksize, float sigma, float* k);
// scratch: at least H * W + max(H, W) + 2 * ksize floats.
void gaussian_blur(float* x, int C, int H, int W, int ksize, float sigma, float* scratch);
void solarize(float* x, int C, int H, int W, float threshold);
void normalize(float* x, int C, int H, int W, const float* mean, const float* std);
// top, left in [0, 2 * pad]; reflect: true for reflect padding, false for zeros. scratch: H * W floats.
void pad_crop(float* x, int C, int H, int W, int pad, int top, int left, bool reflect, float* scratch);

// torch.nn.functional.pad(mode="reflect") index for i in [-n, 2n): mirror at 0 and n - 1 without repeating
// the edge (wraps again for offsets beyond one period, where torch would refuse).
inline int reflect_index(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

}  // namespace siam::kernels::cpu

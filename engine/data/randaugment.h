// RandAugment as torchvision.transforms.RandAugment(num_ops, magnitude, num_magnitude_bins,
// interpolation=NEAREST, fill=None): num_ops times, an op chosen uniformly from the 14 below
// (torch.randint(14)), its magnitude the `magnitude`-th of num_magnitude_bins values, negated with
// probability 1/2 (torch.randint(2)) for the signed ops:
//
//   op            magnitudes (bins b, index m)                    signed  applied as
//   Identity      0                                               no      -
//   ShearX        linspace(0, 0.3, b)[m]                          yes     affine, shear atan(v) deg, center (0, 0)
//   ShearY        linspace(0, 0.3, b)[m]                          yes     affine, shear atan(v) deg, center (0, 0)
//   TranslateX    linspace(0, 150 / 331 * W, b)[m]                yes     affine, translate (int(v), 0)
//   TranslateY    linspace(0, 150 / 331 * H, b)[m]                yes     affine, translate (0, int(v))
//   Rotate        linspace(0, 30, b)[m]                           yes     rotate by v degrees (counter-clockwise)
//   Brightness    linspace(0, 0.9, b)[m]                          yes     adjust_brightness(1 + v)
//   Color         linspace(0, 0.9, b)[m]                          yes     adjust_saturation(1 + v)
//   Contrast      linspace(0, 0.9, b)[m]                          yes     adjust_contrast(1 + v)
//   Sharpness     linspace(0, 0.9, b)[m]                          yes     adjust_sharpness(1 + v)
//   Posterize     8 - round(arange(b) / ((b - 1) / 4))[m]         no      posterize(int(v) bits)
//   Solarize      linspace(1, 0, b)[m] (torchvision >= 0.15: the  no      solarize(threshold v)
//                 0..255 table scaled to the float bound 1)
//   AutoContrast  0                                               no      autocontrast
//   Equalize      0                                               no      equalize
//
// Affine ops use nearest interpolation and fill 0. On 1-channel images Color is the identity and Contrast
// uses the image's own mean, as torchvision does (adjust_saturation returns a 1-channel image unchanged;
// rgb_to_grayscale of 1 channel is itself). linspace is computed in f32 as torch.linspace does.
// Posterize and Equalize need u8 in torchvision; here they quantize to round(255 x) first.
#pragma once
#include <cstdint>

namespace siam::data {

class OpRng;

enum class RandAugOp : uint8_t {
  Identity,
  ShearX,
  ShearY,
  TranslateX,
  TranslateY,
  Rotate,
  Brightness,
  Color,
  Contrast,
  Sharpness,
  Posterize,
  Solarize,
  AutoContrast,
  Equalize,
  kCount
};
constexpr int kNumRandAugOps = static_cast<int>(RandAugOp::kCount);
const char* randaug_op_name(RandAugOp op);
constexpr int kMaxRandAugSteps = 16;

struct RandAugmentSpec {
  int num_ops = 0;  // 0: off
  int magnitude = 9;
  int num_magnitude_bins = 31;
};

// One sampled op: the op and its magnitude as applied (sign included).
struct RandAugStep {
  RandAugOp op = RandAugOp::Identity;
  float magnitude = 0;
};

bool randaug_signed(RandAugOp op);
// The unsigned magnitude of `op` at bin `m` of `bins` for an (H, W) image.
float randaug_magnitude(RandAugOp op, int m, int bins, int H, int W);
// Draws spec.num_ops steps into out[0 .. num_ops) in torchvision's order (op index, then the sign if signed).
void sample_randaugment(const RandAugmentSpec& spec, int H, int W, OpRng& rng, RandAugStep* out);
// Applies one step to x (C, H, W) f32 in [0, 1], in place.
void apply_randaug_step(float* x, int C, int H, int W, RandAugStep step);

}  // namespace siam::data

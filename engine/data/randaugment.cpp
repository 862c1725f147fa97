// RandAugment: op sampling and application; see randaugment.h.
#include "engine/data/randaugment.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "engine/data/views.h"
#include "kernels/cpu/augment.h"
#include "kernels/cpu/randaugment.h"

namespace siam::data {

namespace kc = kernels::cpu;

namespace {
constexpr const char* kNames[] = {"Identity",  "ShearX",     "ShearY",       "TranslateX", "TranslateY",
                                  "Rotate",    "Brightness", "Color",        "Contrast",   "Sharpness",
                                  "Posterize", "Solarize",   "AutoContrast", "Equalize"};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == kNumRandAugOps, "a RandAugment op without a name");

// torch.linspace(start, end, steps)[i] in f32: start + step * i in the first half, end - step * (steps - 1 - i)
// in the second.
float linspace_at(double start, double end, int steps, int i) {
  const float s = static_cast<float>(start), e = static_cast<float>(end);
  if (steps == 1) return s;
  const float step = (e - s) / static_cast<float>(steps - 1);
  return i < steps / 2 ? s + step * static_cast<float>(i) : e - step * static_cast<float>(steps - 1 - i);
}
}  // namespace

const char* randaug_op_name(RandAugOp op) {
  const int i = static_cast<int>(op);
  return i >= 0 && i < kNumRandAugOps ? kNames[i] : "?";
}

bool randaug_signed(RandAugOp op) {
  switch (op) {
    case RandAugOp::ShearX:
    case RandAugOp::ShearY:
    case RandAugOp::TranslateX:
    case RandAugOp::TranslateY:
    case RandAugOp::Rotate:
    case RandAugOp::Brightness:
    case RandAugOp::Color:
    case RandAugOp::Contrast:
    case RandAugOp::Sharpness: return true;
    default: return false;
  }
}

float randaug_magnitude(RandAugOp op, int m, int bins, int H, int W) {
  switch (op) {
    case RandAugOp::ShearX:
    case RandAugOp::ShearY: return linspace_at(0.0, 0.3, bins, m);
    case RandAugOp::TranslateX: return linspace_at(0.0, 150.0 / 331.0 * W, bins, m);
    case RandAugOp::TranslateY: return linspace_at(0.0, 150.0 / 331.0 * H, bins, m);
    case RandAugOp::Rotate: return linspace_at(0.0, 30.0, bins, m);
    case RandAugOp::Brightness:
    case RandAugOp::Color:
    case RandAugOp::Contrast:
    case RandAugOp::Sharpness: return linspace_at(0.0, 0.9, bins, m);
    case RandAugOp::Posterize: {
      // 8 - (arange(b) / ((b - 1) / 4)).round(): f32 division, round half to even
      const float q = static_cast<float>(m) / static_cast<float>((bins - 1) / 4.0);
      return static_cast<float>(8 - static_cast<int>(std::nearbyint(q)));
    }
    case RandAugOp::Solarize: return linspace_at(1.0, 0.0, bins, m);
    default: return 0.0f;
  }
}

void sample_randaugment(const RandAugmentSpec& spec, int H, int W, OpRng& rng, RandAugStep* out) {
  for (int k = 0; k < spec.num_ops; ++k) {
    const auto op = static_cast<RandAugOp>(rng.randint(0, kNumRandAugOps));
    float v = randaug_magnitude(op, spec.magnitude, spec.num_magnitude_bins, H, W);
    if (randaug_signed(op) && rng.randint(0, 2) == 1) v = -v;
    out[k] = {op, v};
  }
}

void apply_randaug_step(float* x, int C, int H, int W, RandAugStep s) {
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(H) * W);
  const double v = s.magnitude;
  double m[6];
  switch (s.op) {
    case RandAugOp::Identity: return;
    case RandAugOp::ShearX:  // center [0, 0] in pixels = (-W / 2, -H / 2) from the image center
      kc::inverse_affine_matrix(-0.5 * W, -0.5 * H, 0.0, 0.0, 0.0, 1.0, std::atan(v) * 180.0 / std::numbers::pi, 0.0,
                                m);
      return kc::affine_nearest(x, C, H, W, m, scratch.data());
    case RandAugOp::ShearY:
      kc::inverse_affine_matrix(-0.5 * W, -0.5 * H, 0.0, 0.0, 0.0, 1.0, 0.0, std::atan(v) * 180.0 / std::numbers::pi,
                                m);
      return kc::affine_nearest(x, C, H, W, m, scratch.data());
    case RandAugOp::TranslateX:
      kc::inverse_affine_matrix(0.0, 0.0, 0.0, static_cast<double>(static_cast<int>(v)), 0.0, 1.0, 0.0, 0.0, m);
      return kc::affine_nearest(x, C, H, W, m, scratch.data());
    case RandAugOp::TranslateY:
      kc::inverse_affine_matrix(0.0, 0.0, 0.0, 0.0, static_cast<double>(static_cast<int>(v)), 1.0, 0.0, 0.0, m);
      return kc::affine_nearest(x, C, H, W, m, scratch.data());
    case RandAugOp::Rotate:  // F.rotate passes -angle to the matrix (affine and rotate disagree on direction)
      kc::inverse_affine_matrix(0.0, 0.0, -v, 0.0, 0.0, 1.0, 0.0, 0.0, m);
      return kc::affine_nearest(x, C, H, W, m, scratch.data());
    case RandAugOp::Brightness: return kc::adjust_brightness(x, C, H, W, static_cast<float>(1.0 + v));
    case RandAugOp::Color: return kc::adjust_saturation(x, C, H, W, static_cast<float>(1.0 + v));
    case RandAugOp::Contrast: return kc::adjust_contrast(x, C, H, W, static_cast<float>(1.0 + v));
    case RandAugOp::Sharpness: return kc::adjust_sharpness(x, C, H, W, static_cast<float>(1.0 + v), scratch.data());
    case RandAugOp::Posterize: return kc::posterize(x, C, H, W, static_cast<int>(v));
    case RandAugOp::Solarize: return kc::solarize(x, C, H, W, s.magnitude);
    case RandAugOp::AutoContrast: return kc::autocontrast(x, C, H, W);
    case RandAugOp::Equalize: return kc::equalize(x, C, H, W);
    case RandAugOp::kCount: break;
  }
  SIAM_ASSERT(false, "apply_randaug_step: op ", static_cast<int>(s.op));
}

}  // namespace siam::data

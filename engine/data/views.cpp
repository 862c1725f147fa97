// View pipelines: parameter sampling (Philox-keyed) and application (kernels/cpu/augment.h).
#include "engine/data/views.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/philox.h"

namespace siam::data {

namespace kc = kernels::cpu;

OpRng::OpRng(const RandKey& key, uint32_t op)
    : seed_(key.seed),
      stream_((0xDA7Aull << 48) | ((key.epoch & 0xFFFFFFull) << 24) | ((static_cast<uint64_t>(key.view) & 0xFFFFull) << 8) |
              (op & 0xFFull)),
      counter_(static_cast<uint64_t>(key.index) << 16) {}

uint32_t OpRng::next_u32() {
  if (used_ == 4) {
    Philox4 b = philox_block(seed_, stream_, counter_++);
    for (int i = 0; i < 4; ++i) buf_[i] = b.v[i];
    used_ = 0;
  }
  return buf_[used_++];
}

double OpRng::uniform() {
  const uint64_t a = next_u32() >> 5, b = next_u32() >> 6;  // 27 + 26 bits
  return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) * (1.0 / 9007199254740992.0);
}

int64_t OpRng::randint(int64_t lo, int64_t hi) {
  SIAM_ASSERT(hi > lo, "randint(", lo, ", ", hi, ")");
  const uint64_t r = (static_cast<uint64_t>(next_u32()) << 32) | next_u32();
  return lo + static_cast<int64_t>(r % static_cast<uint64_t>(hi - lo));
}

namespace {
// Python's round(): half to even (nearbyint in the default rounding mode).
int py_round(double x) { return static_cast<int>(std::nearbyint(x)); }
}  // namespace

kc::CropBox sample_crop_box(int H, int W, const CropSpec& spec, OpRng& rng) {
  const double area = static_cast<double>(H) * W;
  const double log_r0 = std::log(spec.ratio_min), log_r1 = std::log(spec.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(spec.scale_min, spec.scale_max);
    const double aspect = std::exp(rng.uniform(log_r0, log_r1));
    const int w = py_round(std::sqrt(target_area * aspect));
    const int h = py_round(std::sqrt(target_area / aspect));
    if (0 < w && w <= W && 0 < h && h <= H) {
      const int top = static_cast<int>(rng.randint(0, H - h + 1));
      const int left = static_cast<int>(rng.randint(0, W - w + 1));
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(W) / H;
  int w, h;
  if (in_ratio < spec.ratio_min) {
    w = W;
    h = py_round(w / spec.ratio_min);
  } else if (in_ratio > spec.ratio_max) {
    h = H;
    w = py_round(h * spec.ratio_max);
  } else {
    w = W;
    h = H;
  }
  return {(H - h) / 2, (W - w) / 2, h, w};
}

int blur_kernel_size(const BlurSpec& spec, int height, int width) {
  int k = static_cast<int>(spec.kernel_frac * std::min(height, width));
  if (k % 2 == 0) ++k;
  return std::max(k, 3);
}

ViewParams sample_view_params(const ViewSpec& spec, int H, int W, const RandKey& key) {
  ViewParams p;
  if (spec.crop.enabled) {
    OpRng rng(key, kOpCrop);
    p.box = sample_crop_box(H, W, spec.crop, rng);
  } else {
    p.box = {0, 0, H, W};
  }
  {
    OpRng rng(key, kOpFlip);
    p.flip = rng.bernoulli(spec.flip_p);
  }
  if (spec.pad_crop.padding > 0) {
    OpRng rng(key, kOpPadCrop);
    p.pad_top = static_cast<int>(rng.randint(0, 2 * spec.pad_crop.padding + 1));
    p.pad_left = static_cast<int>(rng.randint(0, 2 * spec.pad_crop.padding + 1));
  }
  if (spec.randaugment.num_ops > 0) {
    OpRng rng(key, kOpRandAugment);
    p.ra_count = spec.randaugment.num_ops;
    sample_randaugment(spec.randaugment, spec.height, spec.width, rng, p.ra);
  }
  {
    OpRng rng(key, kOpJitter);
    const JitterSpec& j = spec.jitter;
    p.jitter = rng.bernoulli(j.p);
    if (p.jitter) {
      // torch.randperm(4) as a Fisher-Yates shuffle, then the four factors in the order get_params draws them.
      for (int i = 3; i > 0; --i) std::swap(p.order[i], p.order[rng.randint(0, i + 1)]);
      if (j.brightness > 0) p.brightness = static_cast<float>(rng.uniform(std::max(0.0, 1 - j.brightness), 1 + j.brightness));
      if (j.contrast > 0) p.contrast = static_cast<float>(rng.uniform(std::max(0.0, 1 - j.contrast), 1 + j.contrast));
      if (j.saturation > 0) p.saturation = static_cast<float>(rng.uniform(std::max(0.0, 1 - j.saturation), 1 + j.saturation));
      if (j.hue > 0) p.hue = static_cast<float>(rng.uniform(-j.hue, j.hue));
    }
  }
  {
    OpRng rng(key, kOpGray);
    p.gray = rng.bernoulli(spec.grayscale_p);
  }
  {
    OpRng rng(key, kOpBlur);
    p.blur = rng.bernoulli(spec.blur.p);
    if (p.blur) {
      p.blur_sigma = static_cast<float>(rng.uniform(spec.blur.sigma_min, spec.blur.sigma_max));
      p.blur_ksize = blur_kernel_size(spec.blur, spec.height, spec.width);
    }
  }
  {
    OpRng rng(key, kOpSolarize);
    p.solarize = rng.bernoulli(spec.solarize.p);
  }
  return p;
}

void apply_view(const Image& src, const ViewSpec& spec, const ViewParams& p, float* out) {
  const int C = src.c, H = spec.height, W = spec.width;
  kc::resized_crop(src.data.data(), src.h, src.w, C, p.box, out, H, W);
  if (p.flip) kc::hflip(out, C, H, W);
  if (spec.pad_crop.padding > 0) {
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(H) * W);
    kc::pad_crop(out, C, H, W, spec.pad_crop.padding, p.pad_top, p.pad_left, spec.pad_crop.reflect, scratch.data());
  }
  for (int k = 0; k < p.ra_count; ++k) apply_randaug_step(out, C, H, W, p.ra[k]);
  if (p.jitter) {
    for (int fn : p.order) {
      if (fn == 0 && spec.jitter.brightness > 0) kc::adjust_brightness(out, C, H, W, p.brightness);
      if (fn == 1 && spec.jitter.contrast > 0) kc::adjust_contrast(out, C, H, W, p.contrast);
      if (fn == 2 && spec.jitter.saturation > 0) kc::adjust_saturation(out, C, H, W, p.saturation);
      if (fn == 3 && spec.jitter.hue > 0) kc::adjust_hue(out, C, H, W, p.hue);
    }
  }
  if (p.gray) kc::grayscale(out, C, H, W);
  if (p.blur) {
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(H) * W + std::max(H, W) + 2 * static_cast<size_t>(p.blur_ksize) + 8);
    kc::gaussian_blur(out, C, H, W, p.blur_ksize, p.blur_sigma, scratch.data());
  }
  if (p.solarize) kc::solarize(out, C, H, W, spec.solarize.threshold);
  if (!spec.mean.empty()) {
    float mean[4], std[4];
    for (int c = 0; c < C; ++c) {
      mean[c] = spec.mean.size() == 1 ? spec.mean[0] : spec.mean[static_cast<size_t>(c)];
      std[c] = spec.std.size() == 1 ? spec.std[0] : spec.std[static_cast<size_t>(c)];
    }
    kc::normalize(out, C, H, W, mean, std);
  }
}

void validate(const ViewSpec& s, int channels, const std::string& at) {
  SIAM_CHECK(s.count >= 1, at, ".count: must be >= 1, got ", s.count);
  SIAM_CHECK(s.height >= 1 && s.width >= 1 && s.height <= 8192 && s.width <= 8192, at, ".size: must be in [1, 8192], got ",
             s.height, "x", s.width);
  SIAM_CHECK(s.crop.scale_min > 0 && s.crop.scale_min <= s.crop.scale_max && s.crop.scale_max <= 1.0, at,
             ".crop.scale: need 0 < min <= max <= 1, got [", s.crop.scale_min, ", ", s.crop.scale_max, "]");
  SIAM_CHECK(s.crop.ratio_min > 0 && s.crop.ratio_min <= s.crop.ratio_max, at, ".crop.ratio: need 0 < min <= max, got [",
             s.crop.ratio_min, ", ", s.crop.ratio_max, "]");
  auto prob = [&](double p, const char* key) {
    SIAM_CHECK(p >= 0 && p <= 1, at, ".", key, ": a probability in [0, 1], got ", p);
  };
  prob(s.flip_p, "flip");
  prob(s.jitter.p, "color_jitter.p");
  prob(s.grayscale_p, "grayscale");
  prob(s.blur.p, "blur.p");
  prob(s.solarize.p, "solarize.p");
  SIAM_CHECK(s.jitter.brightness >= 0 && s.jitter.contrast >= 0 && s.jitter.saturation >= 0, at,
             ".color_jitter: brightness, contrast and saturation must be >= 0");
  SIAM_CHECK(s.jitter.hue >= 0 && s.jitter.hue <= 0.5, at, ".color_jitter.hue: must be in [0, 0.5], got ", s.jitter.hue);
  SIAM_CHECK(s.blur.sigma_min > 0 && s.blur.sigma_min <= s.blur.sigma_max, at,
             ".blur.sigma: need 0 < min <= max, got [", s.blur.sigma_min, ", ", s.blur.sigma_max, "]");
  SIAM_CHECK(s.blur.kernel_frac > 0 && s.blur.kernel_frac <= 1, at, ".blur.kernel_frac: must be in (0, 1], got ",
             s.blur.kernel_frac);
  SIAM_CHECK(s.solarize.threshold >= 0 && s.solarize.threshold <= 1, at, ".solarize.threshold: must be in [0, 1], got ",
             s.solarize.threshold);
  SIAM_CHECK(s.pad_crop.padding >= 0 && (!s.pad_crop.reflect || s.pad_crop.padding < std::min(s.height, s.width)), at,
             ".pad_crop.padding: must be in [0, ", std::min(s.height, s.width) - 1, "] for ", s.height, "x", s.width,
             " views with reflect padding (and >= 0), got ", s.pad_crop.padding);
  const RandAugmentSpec& ra = s.randaugment;
  SIAM_CHECK(ra.num_ops >= 0 && ra.num_ops <= kMaxRandAugSteps, at, ".randaugment.num_ops: must be in [0, ",
             kMaxRandAugSteps, "], got ", ra.num_ops);
  SIAM_CHECK(ra.num_magnitude_bins >= 2 && ra.num_magnitude_bins <= 1000, at,
             ".randaugment.num_magnitude_bins: must be in [2, 1000], got ", ra.num_magnitude_bins);
  SIAM_CHECK(ra.magnitude >= 0 && ra.magnitude < ra.num_magnitude_bins, at, ".randaugment.magnitude: must be in [0, ",
             ra.num_magnitude_bins - 1, "] (num_magnitude_bins ", ra.num_magnitude_bins, "), got ", ra.magnitude);
  SIAM_CHECK(s.mean.empty() == s.std.empty(), at, ".normalize: needs both mean and std");
  for (const auto* vals : {&s.mean, &s.std}) {
    SIAM_CHECK(vals->empty() || vals->size() == 1 || static_cast<int>(vals->size()) == channels, at, ".normalize: ",
               vals->size(), " values for ", channels, "-channel images (give 1 or ", channels, ")");
  }
  for (float v : s.std) SIAM_CHECK(v > 0, at, ".normalize.std: values must be > 0, got ", v);
}

ViewPipeline::ViewPipeline(const std::vector<ViewSpec>& specs, int channels) : channels_(channels) {
  SIAM_CHECK(channels >= 1 && channels <= 4, "ViewPipeline: images of ", channels, " channels (expected 1 to 4)");
  SIAM_CHECK(!specs.empty(), "ViewPipeline: no views");
  for (size_t i = 0; i < specs.size(); ++i) {
    validate(specs[i], channels, "views[" + std::to_string(i) + "]");
    for (int k = 0; k < specs[i].count; ++k) views_.push_back(specs[i]);
  }
  SIAM_CHECK(views_.size() <= 0xFFFF, "ViewPipeline: ", views_.size(), " views (at most 65535)");
}

void ViewPipeline::make_view(const Image& src, int v, uint64_t seed, uint64_t epoch, int64_t index, float* out) const {
  SIAM_CHECK(src.c == channels_, "make_view: sample ", index, " has ", src.c, " channels, the pipeline expects ",
             channels_);
  const ViewSpec& spec = view(v);
  ViewParams p = sample_view_params(spec, src.h, src.w, RandKey{seed, epoch, index, v});
  apply_view(src, spec, p, out);
}

ViewSpec simclr_view(int size, int channels) {
  ViewSpec v;
  v.name = "simclr";
  v.count = 2;
  v.height = v.width = size;
  v.crop.scale_min = size <= 32 ? 0.2 : 0.08;
  v.flip_p = 0.5;
  v.jitter = {0.8, 0.4, 0.4, channels >= 3 ? 0.4 : 0.0, channels >= 3 ? 0.1 : 0.0};
  v.grayscale_p = channels >= 3 ? 0.2 : 0.0;
  v.blur = {size >= 64 ? 0.5 : 0.0, 0.1, 2.0, 0.1};
  return v;
}

std::vector<ViewSpec> byol_views(int size, int channels) {
  ViewSpec a;
  a.name = "byol1";
  a.height = a.width = size;
  a.jitter = {0.8, 0.4, 0.4, channels >= 3 ? 0.2 : 0.0, channels >= 3 ? 0.1 : 0.0};
  a.grayscale_p = channels >= 3 ? 0.2 : 0.0;
  a.blur = {1.0, 0.1, 2.0, 0.1};
  a.solarize = {0.0, 0.5};
  ViewSpec b = a;
  b.name = "byol2";
  b.blur.p = 0.1;
  b.solarize.p = 0.2;
  return {a, b};
}

std::vector<ViewSpec> fixmatch_views(int size, int num_ops, int magnitude) {
  ViewSpec weak;
  weak.name = "weak";
  weak.height = weak.width = size;
  weak.crop.enabled = false;
  weak.flip_p = 0.5;
  weak.pad_crop = {static_cast<int>(0.125 * size), true};
  ViewSpec strong = weak;
  strong.name = "strong";
  strong.randaugment = {num_ops, magnitude, 31};
  return {weak, strong};
}

}  // namespace siam::data

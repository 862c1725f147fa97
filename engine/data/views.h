// Views: the per-view augmentation pipelines of consistency training, and the seeded draw of their
// parameters.
//
// A ViewSpec is one pipeline, applied in this fixed order (SimCLR, BYOL, MoCo v2, SwAV, DINO, VICReg all
// use it):
//   crop (RandomResizedCrop, or a plain resize when disabled) -> horizontal flip -> pad-and-crop (RandomCrop
//   with padding: FixMatch's weak translation) -> RandAugment (engine/data/randaugment.h) -> color jitter
//   (with probability p; brightness, contrast, saturation and hue in a random order) -> random grayscale ->
//   Gaussian blur -> solarization -> normalization
// `count` repeats a spec, so multi-crop is {count: 2, size: 224} + {count: 6, size: 96}; per-view specs give
// BYOL's asymmetric blur (1.0 / 0.1) and solarization (0.0 / 0.2) probabilities; FixMatch's weak and strong
// views are two specs, the strong one adding RandAugment (fixmatch_views()).
//
// Randomness: every sampled parameter comes from Philox keyed by (seed, epoch, sample index, view, op):
// key = seed; stream = 0xDA7A << 48 | epoch (24 bits) << 24 | view (16 bits) << 8 | op (8 bits); counter =
// sample index << 16 | draw. A view therefore depends only on those five numbers, never on the thread that
// computes it or on the order in which samples are visited.
//
// Output: f32 (C, size_h, size_w), in [0, 1] before normalization (see kernels/cpu/augment.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/randaugment.h"
#include "kernels/cpu/augment.h"

namespace siam::data {

struct CropSpec {
  bool enabled = true;  // false: resize the whole image to the view size
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
};
struct JitterSpec {
  double p = 0.0;  // probability of applying the jitter at all
  // torchvision's ColorJitter arguments: brightness b -> factor in [max(0, 1 - b), 1 + b], same for contrast
  // and saturation; hue h -> shift in [-h, h] (h <= 0.5). 0 disables that part.
  double brightness = 0, contrast = 0, saturation = 0, hue = 0;
};
struct BlurSpec {
  double p = 0.0;
  double sigma_min = 0.1, sigma_max = 2.0;
  // kernel size = kernel_frac * min(view height, view width), rounded down, made odd, at least 3
  // (SimCLR: 10% of the image side; BYOL uses 23 at 224).
  double kernel_frac = 0.1;
};
struct SolarizeSpec {
  double p = 0.0;
  double threshold = 0.5;  // on [0, 1] values (PIL's 128 on u8 is 128/255)
};
struct PadCropSpec {
  // torchvision RandomCrop(size, padding, padding_mode): pad by `padding` on every side, take a window of
  // the view size at top, left ~ U{0 .. 2 * padding}. 0 disables.
  int padding = 0;
  bool reflect = true;  // padding_mode reflect; false: constant 0
};
struct ViewSpec {
  std::string name = "view";
  int count = 1;
  int height = 32, width = 32;
  CropSpec crop;
  double flip_p = 0.5;
  PadCropSpec pad_crop;
  RandAugmentSpec randaugment;
  JitterSpec jitter;
  double grayscale_p = 0.0;
  BlurSpec blur;
  SolarizeSpec solarize;
  std::vector<float> mean, std;  // empty: no normalization; one value per channel (or one for all)
};

// Op ids, part of the random key: changing them changes every view.
enum ViewOp : uint32_t {
  kOpCrop = 0, kOpFlip = 1, kOpJitter = 2, kOpGray = 3, kOpBlur = 4, kOpSolarize = 5, kOpPadCrop = 6, kOpRandAugment = 7
};

struct RandKey {
  uint64_t seed = 0;
  uint64_t epoch = 0;
  int64_t index = 0;  // the dataset index of the sample
  int view = 0;       // the view's position after expanding counts
};

// Sequential uniform draws for one (key, op).
class OpRng {
 public:
  OpRng(const RandKey& key, uint32_t op);
  // A raw Philox position, for randomness keyed otherwise (batch-level ops: engine/data/mixup.h).
  OpRng(uint64_t seed, uint64_t stream, uint64_t counter) : seed_(seed), stream_(stream), counter_(counter) {}
  uint32_t next_u32();
  double uniform();                            // [0, 1), 53 random bits
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t randint(int64_t lo, int64_t hi);     // [lo, hi)
  bool bernoulli(double p) { return p > 0 && uniform() < p; }

 private:
  uint64_t seed_, stream_, counter_;
  uint32_t buf_[4] = {0, 0, 0, 0};
  int used_ = 4;
};

// torchvision RandomResizedCrop.get_params: 10 attempts of (area fraction ~ U(scale), log-aspect ~
// U(log ratio)), w = round(sqrt(area * aspect)), h = round(sqrt(area / aspect)) (round half to even, as
// Python), accepted when 0 < w <= W and 0 < h <= H, then top ~ U{0..H-h}, left ~ U{0..W-w}; else a center
// crop clamped to the ratio range.
kernels::cpu::CropBox sample_crop_box(int H, int W, const CropSpec& spec, OpRng& rng);

// Every parameter of one view of one sample.
struct ViewParams {
  kernels::cpu::CropBox box;
  bool flip = false;
  int pad_top = 0, pad_left = 0;  // pad_crop window offset in the padded image, each in [0, 2 * padding]
  int ra_count = 0;               // RandAugment steps, in order
  RandAugStep ra[kMaxRandAugSteps];
  bool jitter = false;
  int order[4] = {0, 1, 2, 3};  // 0 brightness, 1 contrast, 2 saturation, 3 hue (torch.randperm(4) order)
  float brightness = 1, contrast = 1, saturation = 1, hue = 0;
  bool gray = false;
  bool blur = false;
  int blur_ksize = 0;
  float blur_sigma = 0;
  bool solarize = false;
};

int blur_kernel_size(const BlurSpec& spec, int height, int width);
ViewParams sample_view_params(const ViewSpec& spec, int H, int W, const RandKey& key);
// Applies a view with the given parameters: src (H, W, C) -> out (C, spec.height, spec.width).
void apply_view(const Image& src, const ViewSpec& spec, const ViewParams& p, float* out);

// The expanded list of views (counts unrolled) for images of `channels` channels.
class ViewPipeline {
 public:
  ViewPipeline(const std::vector<ViewSpec>& specs, int channels);
  int num_views() const { return static_cast<int>(views_.size()); }
  int channels() const { return channels_; }
  const ViewSpec& view(int v) const { return views_.at(static_cast<size_t>(v)); }
  // Writes view v of `src` (sample `index`) into out (C, H_v, W_v).
  void make_view(const Image& src, int v, uint64_t seed, uint64_t epoch, int64_t index, float* out) const;

 private:
  std::vector<ViewSpec> views_;
  int channels_;
};

// Checks a spec's values, naming the offending field (prefix: where the spec came from, e.g. "views[1]").
void validate(const ViewSpec& spec, int channels, const std::string& prefix);

// Common recipes (torchvision parameters from the papers), sized for `size` x `size` views.
ViewSpec simclr_view(int size, int channels);
std::vector<ViewSpec> byol_views(int size, int channels);
// FixMatch (Sohn et al. 2020): weak = flip 0.5 + RandomCrop(size, padding = int(0.125 * size), reflect) on
// the whole image resized to size; strong = weak + RandAugment(num_ops, magnitude). Names "weak", "strong".
std::vector<ViewSpec> fixmatch_views(int size, int num_ops = 2, int magnitude = 9);

}  // namespace siam::data

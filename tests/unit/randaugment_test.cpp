// RandAugment's ops against hand-computed results on small images, FixMatch's pad-and-crop, and the sampled
// op choices and magnitudes against torchvision's tables.
#include "engine/data/randaugment.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "engine/data/config.h"
#include "engine/data/views.h"
#include "kernels/cpu/augment.h"
#include "kernels/cpu/randaugment.h"

namespace siam {
namespace {

namespace kc = kernels::cpu;
using data::RandAugOp;
using data::RandAugStep;

// (C=1, H, W) image with values (i * W + j + 1) / 100.
std::vector<float> ramp(int H, int W) {
  std::vector<float> x(static_cast<size_t>(H) * W);
  for (size_t k = 0; k < x.size(); ++k) x[k] = static_cast<float>(k + 1) / 100.0f;
  return x;
}
float at(const std::vector<float>& x, int W, int i, int j) { return x[static_cast<size_t>(i * W + j)]; }
std::vector<float> apply(std::vector<float> x, int C, int H, int W, RandAugOp op, float mag) {
  data::apply_randaug_step(x.data(), C, H, W, RandAugStep{op, mag});
  return x;
}

TEST(RandAugment, TranslateByOnePixel) {
  const int H = 3, W = 4;
  const auto x = ramp(H, W);
  auto right = apply(x, 1, H, W, RandAugOp::TranslateX, 1.7f);  // int(1.7) = 1 pixel to the right, fill 0
  auto left = apply(x, 1, H, W, RandAugOp::TranslateX, -1.2f);  // int(-1.2) = -1
  auto down = apply(x, 1, H, W, RandAugOp::TranslateY, 1.0f);
  for (int i = 0; i < H; ++i)
    for (int j = 0; j < W; ++j) {
      EXPECT_EQ(at(right, W, i, j), j >= 1 ? at(x, W, i, j - 1) : 0.0f) << i << "," << j;
      EXPECT_EQ(at(left, W, i, j), j + 1 < W ? at(x, W, i, j + 1) : 0.0f) << i << "," << j;
      EXPECT_EQ(at(down, W, i, j), i >= 1 ? at(x, W, i - 1, j) : 0.0f) << i << "," << j;
    }
  EXPECT_EQ(apply(x, 1, H, W, RandAugOp::TranslateX, 0.9f), x);  // int(0.9) = 0
}

TEST(RandAugment, RotateByNinetyDegrees) {
  for (int n : {3, 4}) {
    const auto x = ramp(n, n);
    auto ccw = apply(x, 1, n, n, RandAugOp::Rotate, 90.0f);  // torch.rot90(x, 1, [-2, -1])
    auto cw = apply(x, 1, n, n, RandAugOp::Rotate, -90.0f);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        EXPECT_EQ(at(ccw, n, i, j), at(x, n, j, n - 1 - i)) << n << ": " << i << "," << j;
        EXPECT_EQ(at(cw, n, i, j), at(x, n, n - 1 - j, i)) << n << ": " << i << "," << j;
      }
  }
  // 180 degrees on a 2-channel 2x3 image: every channel reversed
  std::vector<float> x2 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  auto r = apply(x2, 2, 2, 3, RandAugOp::Rotate, 180.0f);
  EXPECT_EQ(r, (std::vector<float>{6, 5, 4, 3, 2, 1, 12, 11, 10, 9, 8, 7}));
}

TEST(RandAugment, ShearAboutTheTopLeftCorner) {
  // ShearX v: src_j = j + v (i + 0.5) rounded half to even; v = 0.5 gives shifts 0, 1, 1, 2 by row.
  const int n = 4;
  const auto x = ramp(n, n);
  auto sx = apply(x, 1, n, n, RandAugOp::ShearX, 0.5f);
  auto sy = apply(x, 1, n, n, RandAugOp::ShearY, 0.5f);
  const int shift[4] = {0, 1, 1, 2};
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int sj = j + shift[i], si = i + shift[j];
      EXPECT_EQ(at(sx, n, i, j), sj < n ? at(x, n, i, sj) : 0.0f) << i << "," << j;
      EXPECT_EQ(at(sy, n, i, j), si < n ? at(x, n, si, j) : 0.0f) << i << "," << j;
    }
  // the inverse matrix itself: shear_x = atan(v) degrees -> [1, v, v * H / 2 ...] with center (-W/2, -H/2)
  double m[6];
  kc::inverse_affine_matrix(-2.0, -3.0, 0.0, 0.0, 0.0, 1.0, std::atan(0.25) * 180.0 / 3.14159265358979323846, 0.0, m);
  EXPECT_NEAR(m[0], 1.0, 1e-12);
  EXPECT_NEAR(m[1], 0.25, 1e-12);
  EXPECT_NEAR(m[2], 0.75, 1e-12);
  EXPECT_NEAR(m[3], 0.0, 1e-12);
  EXPECT_NEAR(m[4], 1.0, 1e-12);
  EXPECT_NEAR(m[5], 0.0, 1e-12);
}

TEST(RandAugment, PosterizeKeepsTheHighBits) {
  const float v = 183.0f / 255.0f;  // 0b10110111
  const std::map<int, int> expect = {{8, 183}, {5, 176}, {3, 160}, {1, 128}, {0, 0}};
  for (auto [bits, q] : expect) {
    std::vector<float> x = {v, 0.0f, 1.0f};
    kc::posterize(x.data(), 1, 1, 3, bits);
    EXPECT_FLOAT_EQ(x[0] * 255.0f, static_cast<float>(q)) << bits;
    EXPECT_EQ(x[1], 0.0f);
    EXPECT_FLOAT_EQ(x[2] * 255.0f, bits == 0 ? 0.0f : static_cast<float>(0xFF & ~((1 << (8 - bits)) - 1)));
  }
  // f32 values between levels round to the nearest level first: 100.4 -> 100 = 0b01100100 -> 4 bits: 96
  std::vector<float> y = {100.4f / 255.0f};
  kc::posterize(y.data(), 1, 1, 1, 4);
  EXPECT_FLOAT_EQ(y[0] * 255.0f, 96.0f);
}

TEST(RandAugment, EqualizeAKnownHistogram) {
  // 510 pixels at 10, 255 at 50, 255 at 200: step = (510 + 255) / 255 = 3,
  // lut[10] = (0 + 1) / 3 = 0, lut[50] = (510 + 1) / 3 = 170, lut[200] = (765 + 1) / 3 = 255.
  std::vector<float> x;
  for (int k = 0; k < 510; ++k) x.push_back(10.0f / 255.0f);
  for (int k = 0; k < 255; ++k) x.push_back(50.0f / 255.0f);
  for (int k = 0; k < 255; ++k) x.push_back(200.0f / 255.0f);
  kc::equalize(x.data(), 1, 1, static_cast<int>(x.size()));
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_FLOAT_EQ(x[600] * 255.0f, 170.0f);
  EXPECT_FLOAT_EQ(x[900] * 255.0f, 255.0f);
  // step 0 (fewer than 255 pixels outside the top bin): unchanged; a second channel is equalized on its own
  std::vector<float> small = {0.1f, 0.5f, 0.9f, 0.3f}, before = small;
  kc::equalize(small.data(), 1, 2, 2);
  EXPECT_EQ(small, before);
}

TEST(RandAugment, AutoContrastStretchesEachChannel) {
  std::vector<float> x = {0.2f, 0.4f, 0.6f, 0.3f, 0.3f, 0.3f};  // (2, 1, 3); channel 1 is flat
  kc::autocontrast(x.data(), 2, 1, 3);
  EXPECT_NEAR(x[0], 0.0f, 1e-6f);
  EXPECT_NEAR(x[1], 0.5f, 1e-6f);
  EXPECT_NEAR(x[2], 1.0f, 1e-6f);
  EXPECT_EQ(x[3], 0.3f);
  EXPECT_EQ(x[5], 0.3f);
}

TEST(RandAugment, SharpnessBlendsWithTheThreeByThreeBlur) {
  std::vector<float> x = {0.1f, 0.2f, 0.3f, 0.4f, 0.9f, 0.6f, 0.7f, 0.8f, 0.5f};  // (1, 3, 3)
  const float blur = (0.1f + 0.2f + 0.3f + 0.4f + 0.6f + 0.7f + 0.8f + 0.5f + 5 * 0.9f) / 13.0f;
  auto soft = apply(x, 1, 3, 3, RandAugOp::Sharpness, -1.0f);  // factor 0: the blurred image
  auto sharp = apply(x, 1, 3, 3, RandAugOp::Sharpness, 0.5f);  // factor 1.5
  EXPECT_NEAR(soft[4], blur, 1e-6f);
  EXPECT_NEAR(sharp[4], std::min(1.0f, 1.5f * 0.9f - 0.5f * blur), 1e-6f);
  for (int k : {0, 1, 2, 3, 5, 6, 7, 8}) {  // the border is its own blur
    EXPECT_NEAR(soft[static_cast<size_t>(k)], x[static_cast<size_t>(k)], 1e-6f) << k;
    EXPECT_NEAR(sharp[static_cast<size_t>(k)], x[static_cast<size_t>(k)], 1e-6f) << k;
  }
  std::vector<float> tiny = {0.1f, 0.9f, 0.4f, 0.2f};  // 2x2: unchanged
  EXPECT_EQ(apply(tiny, 1, 2, 2, RandAugOp::Sharpness, 0.9f), tiny);
}

TEST(RandAugment, ColorOpsOnOneAndThreeChannels) {
  std::vector<float> one = {0.2f, 0.6f};                        // (1, 1, 2), mean 0.4
  EXPECT_EQ(apply(one, 1, 1, 2, RandAugOp::Color, 0.9f), one);  // saturation needs 3 channels: identity
  auto c = apply(one, 1, 1, 2, RandAugOp::Contrast, 0.5f);      // the image's own mean
  EXPECT_NEAR(c[0], 1.5f * 0.2f - 0.5f * 0.4f, 1e-6f);
  EXPECT_NEAR(c[1], 1.5f * 0.6f - 0.5f * 0.4f, 1e-6f);
  auto b = apply(one, 1, 1, 2, RandAugOp::Brightness, -0.5f);
  EXPECT_NEAR(b[1], 0.3f, 1e-6f);
  auto s = apply(one, 1, 1, 2, RandAugOp::Solarize, 0.5f);
  EXPECT_NEAR(s[0], 0.2f, 1e-6f);
  EXPECT_NEAR(s[1], 0.4f, 1e-6f);
  std::vector<float> rgb = {0.9f, 0.2f, 0.4f};               // (3, 1, 1)
  auto gray = apply(rgb, 3, 1, 1, RandAugOp::Color, -1.0f);  // factor 0: grayscale
  const float g = 0.299f * 0.9f + 0.587f * 0.2f + 0.114f * 0.4f;
  for (float v : gray) EXPECT_NEAR(v, g, 1e-6f);
  EXPECT_EQ(apply(rgb, 3, 1, 1, RandAugOp::Identity, 0.0f), rgb);
}

TEST(RandAugment, MagnitudeTablesAreTorchvisions) {
  // num_magnitude_bins 31, magnitude 9 (torchvision's default), a 28x32 image
  EXPECT_NEAR(data::randaug_magnitude(RandAugOp::ShearX, 9, 31, 28, 32), 0.09f, 1e-7f);
  EXPECT_NEAR(data::randaug_magnitude(RandAugOp::TranslateX, 9, 31, 28, 32), 150.0 / 331.0 * 32 * 0.3, 1e-5);
  EXPECT_NEAR(data::randaug_magnitude(RandAugOp::TranslateY, 9, 31, 28, 32), 150.0 / 331.0 * 28 * 0.3, 1e-5);
  EXPECT_NEAR(data::randaug_magnitude(RandAugOp::Rotate, 9, 31, 28, 32), 9.0f, 1e-5f);
  EXPECT_NEAR(data::randaug_magnitude(RandAugOp::Brightness, 9, 31, 28, 32), 0.27f, 1e-6f);
  EXPECT_NEAR(data::randaug_magnitude(RandAugOp::Solarize, 9, 31, 28, 32), 0.7f, 1e-6f);
  EXPECT_EQ(data::randaug_magnitude(RandAugOp::Rotate, 30, 31, 28, 32), 30.0f);  // the end is exact
  // posterize: 8 - round(m / 7.5): 0 -> 8, 4 (0.53) -> 7, 9 (1.2) -> 7, 12 (1.6) -> 6, 30 -> 4
  const std::map<int, float> post = {{0, 8}, {4, 7}, {9, 7}, {12, 6}, {30, 4}};
  for (auto [m, bits] : post) EXPECT_EQ(data::randaug_magnitude(RandAugOp::Posterize, m, 31, 28, 32), bits) << m;
  EXPECT_EQ(data::randaug_magnitude(RandAugOp::Equalize, 9, 31, 28, 32), 0.0f);
  EXPECT_STREQ(data::randaug_op_name(RandAugOp::AutoContrast), "AutoContrast");
}

TEST(RandAugment, SampledOpsAndMagnitudesStayInRange) {
  data::RandAugmentSpec spec{3, 13, 31};
  const int H = 28, W = 28, N = 4000;
  std::map<int, int> counts;
  std::map<int, std::set<bool>> signs;
  for (int i = 0; i < N; ++i) {
    data::OpRng rng(data::RandKey{5, 1, i, 0}, data::kOpRandAugment);
    RandAugStep steps[3];
    data::sample_randaugment(spec, H, W, rng, steps);
    for (const RandAugStep& s : steps) {
      const int k = static_cast<int>(s.op);
      ASSERT_GE(k, 0);
      ASSERT_LT(k, data::kNumRandAugOps);
      ++counts[k];
      const float table = data::randaug_magnitude(s.op, 13, 31, H, W);
      if (data::randaug_signed(s.op)) {
        EXPECT_EQ(std::abs(s.magnitude), table);
        signs[k].insert(s.magnitude < 0);
      } else {
        EXPECT_EQ(s.magnitude, table);
      }
    }
  }
  ASSERT_EQ(counts.size(), static_cast<size_t>(data::kNumRandAugOps));  // every op occurs
  const double p = 1.0 / data::kNumRandAugOps, n = 3.0 * N;
  for (auto [k, c] : counts)
    EXPECT_LT(std::abs(c - p * n), 5 * std::sqrt(n * p * (1 - p))) << data::randaug_op_name(static_cast<RandAugOp>(k));
  for (auto& [k, s] : signs) EXPECT_EQ(s.size(), 2u) << data::randaug_op_name(static_cast<RandAugOp>(k));  // both signs
}

TEST(FixMatch, PadCropTranslatesWithReflectOrZeros) {
  const int H = 3, W = 4;
  const auto x = ramp(H, W);
  std::vector<float> scratch(static_cast<size_t>(H * W));
  auto r = x;
  kc::pad_crop(r.data(), 1, H, W, 2, 2 - 1, 2 + 1, true, scratch.data());  // dy = -1, dx = +1
  auto z = x;
  kc::pad_crop(z.data(), 1, H, W, 2, 2 - 1, 2 + 1, false, scratch.data());
  for (int i = 0; i < H; ++i)
    for (int j = 0; j < W; ++j) {
      const int si = i - 1, sj = j + 1;
      EXPECT_EQ(at(r, W, i, j), at(x, W, kc::reflect_index(si, H), kc::reflect_index(sj, W))) << i << "," << j;
      EXPECT_EQ(at(z, W, i, j), si >= 0 && sj < W ? at(x, W, si, sj) : 0.0f) << i << "," << j;
    }
  auto same = x;
  kc::pad_crop(same.data(), 1, H, W, 2, 2, 2, true, scratch.data());
  EXPECT_EQ(same, x);
}

TEST(FixMatch, WeakAndStrongViews) {
  auto specs = data::fixmatch_views(32);
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].name, "weak");
  EXPECT_EQ(specs[0].pad_crop.padding, 4);
  EXPECT_EQ(specs[0].randaugment.num_ops, 0);
  EXPECT_EQ(specs[1].randaugment.num_ops, 2);
  EXPECT_FALSE(specs[1].crop.enabled);
  data::ViewPipeline pipe(specs, 3);
  EXPECT_EQ(pipe.num_views(), 2);
  int flips = 0;
  std::set<int> offsets;
  for (int i = 0; i < 2000; ++i) {
    auto p = data::sample_view_params(specs[1], 32, 32, data::RandKey{3, 0, i, 1});
    ASSERT_GE(p.pad_top, 0);
    ASSERT_LE(p.pad_top, 8);
    ASSERT_GE(p.pad_left, 0);
    ASSERT_LE(p.pad_left, 8);
    offsets.insert(p.pad_left);
    EXPECT_EQ(p.ra_count, 2);
    flips += p.flip;
    auto w = data::sample_view_params(specs[0], 32, 32, data::RandKey{3, 0, i, 0});
    EXPECT_EQ(w.ra_count, 0);
  }
  EXPECT_EQ(offsets.size(), 9u);
  EXPECT_GT(flips, 850);
  EXPECT_LT(flips, 1150);
  // a whole strong view: deterministic, in [0, 1], and different from the weak one
  data::Image img(32, 32, 3);
  for (size_t k = 0; k < img.data.size(); ++k) img.data[k] = static_cast<uint8_t>((k * 37) % 251);
  std::vector<float> a(3 * 32 * 32), b(a.size()), c(a.size());
  pipe.make_view(img, 1, 7, 0, 5, a.data());
  pipe.make_view(img, 1, 7, 0, 5, b.data());
  pipe.make_view(img, 0, 7, 0, 5, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (float v : a) ASSERT_TRUE(v >= 0.0f && v <= 1.0f) << v;
}

TEST(FixMatch, ConfigKeysAndValidation) {
  auto cfg = data::parse_views_config(R"(
data: {kind: synthetic, size: 8, height: 16, width: 16, channels: 1}
views:
  - {name: weak, size: 16, crop: false, flip: 0.5, pad_crop: {padding: 2, mode: zeros}}
  - {name: strong, size: 16, crop: false, pad_crop: 2, randaugment: {num_ops: 3, magnitude: 20, num_magnitude_bins: 25}}
)",
                                      "test");
  ASSERT_EQ(cfg.views.size(), 2u);
  EXPECT_EQ(cfg.views[0].pad_crop.padding, 2);
  EXPECT_FALSE(cfg.views[0].pad_crop.reflect);
  EXPECT_TRUE(cfg.views[1].pad_crop.reflect);
  EXPECT_EQ(cfg.views[1].randaugment.num_ops, 3);
  EXPECT_EQ(cfg.views[1].randaugment.magnitude, 20);
  EXPECT_EQ(cfg.views[1].randaugment.num_magnitude_bins, 25);
  auto defaults = data::parse_views_config("views: [{size: 8, randaugment: {}}]", "t");
  EXPECT_EQ(defaults.views[0].randaugment.num_ops, 2);
  EXPECT_EQ(defaults.views[0].randaugment.magnitude, 9);
  auto bad = [](const std::string& yaml, const std::string& needle) {
    try {
      data::parse_views_config(yaml, "bad.yaml");
      ADD_FAILURE() << "no error for " << yaml;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  bad("views: [{size: 8, randaugment: {magnitude: 31}}]", "randaugment.magnitude");
  bad("views: [{size: 8, randaugment: {num_ops: 40}}]", "randaugment.num_ops");
  bad("views: [{size: 8, randaugment: {strength: 3}}]", "randaugment.strength");
  bad("views: [{size: 8, pad_crop: 8}]", "pad_crop.padding");
  bad("views: [{size: 8, pad_crop: {padding: 2, mode: wrap}}]", "pad_crop.mode");
}

TEST(FixMatch, ShippedFashionMnistConfigLoads) {
  const std::string path = "configs/views_fixmatch_fmnist.yaml";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "run from the source root";
  auto cfg = data::load_views_config(path);
  EXPECT_EQ(cfg.data.kind, "fashion-mnist");
  ASSERT_EQ(cfg.views.size(), 2u);
  EXPECT_EQ(cfg.views[0].randaugment.num_ops, 0);
  EXPECT_GT(cfg.views[1].randaugment.num_ops, 0);
  EXPECT_GT(cfg.views[0].pad_crop.padding, 0);
}

}  // namespace
}  // namespace siam

// The view kernels against hand-computed results, and the sampled parameters against their ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "engine/data/views.h"
#include "kernels/common/philox.h"
#include "kernels/cpu/augment.h"

namespace siam {
namespace {

namespace kc = kernels::cpu;
using data::CropSpec;
using data::OpRng;
using data::RandKey;
using data::ViewSpec;

std::vector<float> random_image(int n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = philox_uniform(philox_block(seed, 7, static_cast<uint64_t>(i)).v[0]);
  return v;
}

TEST(Augment, HFlipReversesRows) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // (2, 2, 3)
  kc::hflip(x.data(), 2, 2, 3);
  EXPECT_EQ(x, (std::vector<float>{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}));
}

TEST(Augment, ResizedCropKnownBoxes) {
  // (H=3, W=4, C=1) u8 source; the box rows 1..2, cols 0..3, downsampled 2x in width, kept in height.
  std::vector<uint8_t> src = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110};
  std::vector<float> out(4);
  kc::resized_crop(src.data(), 3, 4, 1, {1, 0, 2, 4}, out.data(), 2, 2);
  // x: src = (d + 0.5) * 2 - 0.5 = 0.5, 2.5 -> mean of neighbours; y: identity rows 1 and 2
  const float e[4] = {45, 65, 85, 105};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[static_cast<size_t>(i)], e[i] / 255.0f, 1e-6f) << i;
  // identity box: exactly /255, and HWC -> CHW
  std::vector<uint8_t> rgb = {1, 2, 3, 4, 5, 6};  // (1, 2, 3)
  std::vector<float> o2(6);
  kc::resized_crop(rgb.data(), 1, 2, 3, {0, 0, 1, 2}, o2.data(), 1, 2);
  const float e2[6] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(o2[static_cast<size_t>(i)], e2[i] / 255.0f);
  // upsampling 2 -> 4 (PyTorch: src = max((d + .5) / 2 - .5, 0) = 0, .25, .75, 1.25 -> clamped tap)
  std::vector<uint8_t> two = {0, 100};
  std::vector<float> o3(4);
  kc::resized_crop(two.data(), 1, 2, 1, {0, 0, 1, 2}, o3.data(), 1, 4);
  const float e3[4] = {0, 25, 75, 100};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(o3[static_cast<size_t>(i)], e3[i] / 255.0f, 1e-6f) << i;
  // f32 variant agrees with the u8 one
  std::vector<float> srcf(src.begin(), src.end());
  std::vector<float> o4(6), o5(6);
  kc::resized_crop_f32(srcf.data(), 1, 3, 4, {0, 1, 3, 3}, o4.data(), 2, 3);
  kc::resized_crop(src.data(), 3, 4, 1, {0, 1, 3, 3}, o5.data(), 2, 3);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(o4[static_cast<size_t>(i)] / 255.0f, o5[static_cast<size_t>(i)], 1e-6f);
}

TEST(Augment, BrightnessAndContrastFactors) {
  std::vector<float> x = {0.2f, 0.4f, 0.6f, 0.8f};  // (1, 2, 2)
  kc::adjust_brightness(x.data(), 1, 2, 2, 1.5f);
  EXPECT_NEAR(x[0], 0.3f, 1e-6f);
  EXPECT_NEAR(x[2], 0.9f, 1e-6f);
  EXPECT_FLOAT_EQ(x[3], 1.0f);  // 1.2 clamped
  std::vector<float> y = {0.2f, 0.4f, 0.6f, 0.8f};  // mean 0.5
  kc::adjust_contrast(y.data(), 1, 2, 2, 2.0f);
  const float e[4] = {0.0f, 0.3f, 0.7f, 1.0f};  // 2x - 0.5, clamped
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[static_cast<size_t>(i)], e[i], 1e-6f);
  // RGB contrast uses the mean of the grayscale image: one red and one black pixel -> m = 0.299 / 2
  std::vector<float> rgb = {1, 0, 0, 0, 0, 0};  // (3, 1, 2)
  kc::adjust_contrast(rgb.data(), 3, 1, 2, 0.5f);
  const float m = 0.299f / 2;
  EXPECT_NEAR(rgb[0], 0.5f + 0.5f * m, 1e-6f);
  EXPECT_NEAR(rgb[1], 0.5f * m, 1e-6f);
  EXPECT_NEAR(rgb[2], 0.5f * m, 1e-6f);
}

TEST(Augment, GrayscaleWeightsAndSaturation) {
  std::vector<float> x = {1, 0, 0, 0, 1, 0, 0, 0, 1};  // (3, 1, 3): red, green, blue pixels
  kc::grayscale(x.data(), 3, 1, 3);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(x[static_cast<size_t>(3 * c + 0)], 0.299f, 1e-7f);
    EXPECT_NEAR(x[static_cast<size_t>(3 * c + 1)], 0.587f, 1e-7f);
    EXPECT_NEAR(x[static_cast<size_t>(3 * c + 2)], 0.114f, 1e-7f);
  }
  std::vector<float> s = {0.9f, 0.2f, 0.4f};  // (3, 1, 1)
  const float g = 0.299f * 0.9f + 0.587f * 0.2f + 0.114f * 0.4f;
  auto s0 = s;
  kc::adjust_saturation(s0.data(), 3, 1, 1, 0.0f);
  for (float v : s0) EXPECT_NEAR(v, g, 1e-6f);
  auto s2 = s;
  kc::adjust_saturation(s2.data(), 3, 1, 1, 1.5f);
  EXPECT_NEAR(s2[0], std::min(1.0f, 1.5f * 0.9f - 0.5f * g), 1e-6f);
  EXPECT_NEAR(s2[1], std::max(0.0f, 1.5f * 0.2f - 0.5f * g), 1e-6f);
  // 1-channel: saturation, hue and grayscale leave the image alone
  std::vector<float> one = {0.1f, 0.7f}, before = one;
  kc::adjust_saturation(one.data(), 1, 1, 2, 0.0f);
  kc::adjust_hue(one.data(), 1, 1, 2, 0.3f);
  kc::grayscale(one.data(), 1, 1, 2);
  EXPECT_EQ(one, before);
}

TEST(Augment, HueRotatesPrimaries) {
  auto hue = [](std::vector<float> px, float f) {
    kc::adjust_hue(px.data(), 3, 1, 1, f);
    return px;
  };
  auto near = [](const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(a[i], b[i], 1e-5f) << i;
  };
  near(hue({1, 0, 0}, 1.0f / 3), {0, 1, 0});
  near(hue({1, 0, 0}, -1.0f / 3), {0, 0, 1});
  near(hue({1, 0, 0}, 0.5f), {0, 1, 1});
  near(hue({0.3f, 0.6f, 0.2f}, 0.0f), {0.3f, 0.6f, 0.2f});
  near(hue({0.5f, 0.5f, 0.5f}, 0.25f), {0.5f, 0.5f, 0.5f});  // gray has no hue
  // value (max) and saturation are preserved
  auto o = hue({0.8f, 0.3f, 0.1f}, 0.17f);
  EXPECT_NEAR(*std::max_element(o.begin(), o.end()), 0.8f, 1e-5f);
  EXPECT_NEAR(*std::min_element(o.begin(), o.end()), 0.1f, 1e-5f);
}

TEST(Augment, SolarizeThresholdAndNormalize) {
  std::vector<float> x = {0.2f, 0.5f, 0.7f, 1.0f};
  kc::solarize(x.data(), 1, 1, 4, 0.5f);
  EXPECT_FLOAT_EQ(x[0], 0.2f);
  EXPECT_FLOAT_EQ(x[1], 0.5f);  // >= threshold flips: 1 - 0.5
  EXPECT_NEAR(x[2], 0.3f, 1e-6f);
  EXPECT_FLOAT_EQ(x[3], 0.0f);
  std::vector<float> y = {0.5f, 1.0f, 0.0f, 0.25f};  // (2, 1, 2)
  const float mean[2] = {0.5f, 0.25f}, std[2] = {0.5f, 0.25f};
  kc::normalize(y.data(), 2, 1, 2, mean, std);
  EXPECT_NEAR(y[0], 0.0f, 1e-6f);
  EXPECT_NEAR(y[1], 1.0f, 1e-6f);
  EXPECT_NEAR(y[2], -1.0f, 1e-6f);
  EXPECT_NEAR(y[3], 0.0f, 1e-6f);
}

TEST(Augment, GaussianKernelByHand) {
  float k[3];
  kc::gaussian_kernel1d(3, 1.0f, k);
  const float e = std::exp(-0.5f), z = 1 + 2 * e;
  EXPECT_NEAR(k[0], e / z, 1e-7f);
  EXPECT_NEAR(k[1], 1 / z, 1e-7f);
  EXPECT_NEAR(k[2], e / z, 1e-7f);
  EXPECT_EQ(kc::reflect_index(-1, 5), 1);
  EXPECT_EQ(kc::reflect_index(-2, 5), 2);
  EXPECT_EQ(kc::reflect_index(5, 5), 3);
  EXPECT_EQ(kc::reflect_index(6, 5), 2);
  EXPECT_EQ(kc::reflect_index(3, 1), 0);
}

// Direct 2-D convolution with the outer-product kernel and reflect padding (torchvision's formulation).
std::vector<float> blur_direct(const std::vector<float>& x, int C, int H, int W, int ks, float sigma) {
  std::vector<float> k(static_cast<size_t>(ks));
  kc::gaussian_kernel1d(ks, sigma, k.data());
  std::vector<float> out(x.size());
  const int half = ks / 2;
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int j = 0; j < W; ++j) {
        double acc = 0;
        for (int a = 0; a < ks; ++a)
          for (int b = 0; b < ks; ++b) {
            const int yy = kc::reflect_index(y - half + a, H), xx = kc::reflect_index(j - half + b, W);
            acc += static_cast<double>(k[static_cast<size_t>(a)] * k[static_cast<size_t>(b)]) *
                   x[static_cast<size_t>((c * H + yy) * W + xx)];
          }
        out[static_cast<size_t>((c * H + y) * W + j)] = static_cast<float>(acc);
      }
  return out;
}

TEST(Augment, GaussianBlurMatchesDirectConvolution) {
  struct Case {
    int C, H, W, ks;
    float sigma;
  };
  for (Case cs : {Case{3, 9, 11, 5, 1.3f}, Case{1, 28, 28, 3, 0.4f}, Case{2, 6, 7, 7, 2.0f}, Case{3, 32, 32, 3, 1.9f}}) {
    auto x = random_image(cs.C * cs.H * cs.W, static_cast<uint64_t>(cs.ks));
    auto expect = blur_direct(x, cs.C, cs.H, cs.W, cs.ks, cs.sigma);
    std::vector<float> scratch(static_cast<size_t>(cs.H * cs.W + std::max(cs.H, cs.W) + 2 * cs.ks));
    kc::gaussian_blur(x.data(), cs.C, cs.H, cs.W, cs.ks, cs.sigma, scratch.data());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], expect[i], 2e-6f) << "case ks=" << cs.ks << " at " << i;
  }
  // a constant image stays constant
  std::vector<float> flat(3 * 10 * 10, 0.37f);
  std::vector<float> scratch(200);
  kc::gaussian_blur(flat.data(), 3, 10, 10, 5, 1.0f, scratch.data());
  for (float v : flat) EXPECT_NEAR(v, 0.37f, 1e-6f);
}

TEST(Views, CropBoxFallbackIsTorchvisionCenterCrop) {
  RandKey key{1, 0, 0, 0};
  OpRng rng(key, data::kOpCrop);
  CropSpec wide;
  wide.ratio_min = 200, wide.ratio_max = 400;  // w >= sqrt(0.08 * 1e6 * 200) > 1000: 10 failed attempts
  auto b = data::sample_crop_box(1000, 1000, wide, rng);
  EXPECT_EQ(b.width, 1000);
  EXPECT_EQ(b.height, 5);  // round(1000 / 200)
  EXPECT_EQ(b.top, 497);
  EXPECT_EQ(b.left, 0);
  CropSpec tall;
  tall.ratio_min = 0.05, tall.ratio_max = 0.1;
  b = data::sample_crop_box(50, 80, tall, rng);  // in_ratio 1.6 > 0.1: h = H, w = round(50 * 0.1)
  EXPECT_EQ(b.height, 50);
  EXPECT_EQ(b.width, 5);
  EXPECT_EQ(b.top, 0);
  EXPECT_EQ(b.left, 37);
}

TEST(Views, SampledParametersStayInRange) {
  ViewSpec s;
  s.height = s.width = 32;
  s.crop.scale_min = 0.2, s.crop.scale_max = 0.6;
  s.crop.ratio_min = 0.5, s.crop.ratio_max = 2.0;
  s.jitter = {0.8, 0.4, 0.3, 0.2, 0.1};
  s.flip_p = 0.5;
  s.grayscale_p = 0.2;
  s.blur = {0.5, 0.1, 2.0, 0.1};
  s.solarize = {0.2, 0.5};
  const int H = 64, W = 96, N = 4000;
  int flips = 0, jit = 0, grays = 0, blurs = 0, sols = 0;
  std::set<std::vector<int>> orders;
  for (int i = 0; i < N; ++i) {
    auto p = data::sample_view_params(s, H, W, RandKey{42, 3, i, i % 2});
    ASSERT_GE(p.box.top, 0);
    ASSERT_GE(p.box.left, 0);
    ASSERT_LE(p.box.top + p.box.height, H);
    ASSERT_LE(p.box.left + p.box.width, W);
    // area and ratio within range up to the rounding of w and h
    const double area = static_cast<double>(p.box.height) * p.box.width / (H * W);
    EXPECT_GE(area, 0.2 * 0.9);
    EXPECT_LE(area, 0.6 * 1.1);
    const double ratio = static_cast<double>(p.box.width) / p.box.height;
    EXPECT_GE(ratio, 0.5 * 0.9);
    EXPECT_LE(ratio, 2.0 * 1.1);
    flips += p.flip, jit += p.jitter, grays += p.gray, blurs += p.blur, sols += p.solarize;
    if (p.jitter) {
      EXPECT_GE(p.brightness, 0.6f);
      EXPECT_LE(p.brightness, 1.4f);
      EXPECT_GE(p.contrast, 0.7f);
      EXPECT_LE(p.contrast, 1.3f);
      EXPECT_GE(p.saturation, 0.8f);
      EXPECT_LE(p.saturation, 1.2f);
      EXPECT_GE(p.hue, -0.1f);
      EXPECT_LE(p.hue, 0.1f);
      orders.insert(std::vector<int>(p.order, p.order + 4));
    }
    if (p.blur) {
      EXPECT_GE(p.blur_sigma, 0.1f);
      EXPECT_LE(p.blur_sigma, 2.0f);
      EXPECT_EQ(p.blur_ksize, 3);  // 0.1 * 32 = 3
    }
  }
  // Bernoulli frequencies within 5 sigma
  auto freq_ok = [&](int count, double p) { return std::abs(count - p * N) < 5 * std::sqrt(N * p * (1 - p)); };
  EXPECT_TRUE(freq_ok(flips, 0.5)) << flips;
  EXPECT_TRUE(freq_ok(jit, 0.8)) << jit;
  EXPECT_TRUE(freq_ok(grays, 0.2)) << grays;
  EXPECT_TRUE(freq_ok(blurs, 0.5)) << blurs;
  EXPECT_TRUE(freq_ok(sols, 0.2)) << sols;
  EXPECT_EQ(orders.size(), 24u);  // every order of the four jitter ops occurs
  EXPECT_EQ(data::blur_kernel_size({1, 0.1, 2, 0.1}, 224, 224), 23);
}

TEST(Views, ParametersDependOnlyOnTheKey) {
  auto s = data::simclr_view(32, 3);
  auto a = data::sample_view_params(s, 40, 40, RandKey{7, 2, 11, 1});
  auto b = data::sample_view_params(s, 40, 40, RandKey{7, 2, 11, 1});
  EXPECT_EQ(a.box.top, b.box.top);
  EXPECT_EQ(a.box.width, b.box.width);
  EXPECT_EQ(a.brightness, b.brightness);
  int differ = 0;
  for (int v = 0; v < 20; ++v) {
    auto c = data::sample_view_params(s, 40, 40, RandKey{7, 2, 11, 100 + v});
    differ += c.box.top != a.box.top || c.box.left != a.box.left || c.box.height != a.box.height;
  }
  EXPECT_GT(differ, 10);
}

TEST(Views, ApplyViewComposesTheOps) {
  // A view with only a known crop box, a flip and solarize: the result computed by hand.
  data::Image img(2, 4, 1);
  for (int i = 0; i < 8; ++i) img.data[static_cast<size_t>(i)] = static_cast<uint8_t>(i * 30);
  ViewSpec s;
  s.height = 2, s.width = 2;
  s.solarize.threshold = 0.5;
  data::ViewParams p;
  p.box = {0, 1, 2, 2};
  p.flip = true;
  p.solarize = true;
  s.mean = {0.5f};
  s.std = {0.25f};
  std::vector<float> out(4);
  data::apply_view(img, s, p, out.data());
  // crop cols 1..2: rows {30, 60}, {150, 180}; flip: {60, 30}, {180, 150}; /255, solarize >= .5, normalize
  const float raw[4] = {60, 30, 180, 150};
  for (int i = 0; i < 4; ++i) {
    float v = raw[i] / 255.0f;
    if (v >= 0.5f) v = 1 - v;
    EXPECT_NEAR(out[static_cast<size_t>(i)], (v - 0.5f) / 0.25f, 1e-5f) << i;
  }
}

TEST(Views, ValidateNamesTheField) {
  ViewSpec s;
  s.flip_p = 1.5;
  try {
    data::validate(s, 3, "views[2]");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("views[2].flip"), std::string::npos) << e.what();
  }
  ViewSpec n;
  n.mean = {0.1f, 0.2f};
  n.std = {1, 1};
  EXPECT_THROW(data::validate(n, 3, "v"), Error);
}

}  // namespace
}  // namespace siam

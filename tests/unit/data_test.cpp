// Datasets (ImageFolder, CIFAR, IDX, synthetic) with fixture files written by the test, the bad-input
// errors, and the YAML view config.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/test_util.h"
#include "engine/data/config.h"
#include "engine/data/dataset.h"

namespace siam {
namespace {

using test::error_of;

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("siam_data_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}


data::Image pattern(int h, int w, int c, int base) {
  data::Image img(h, w, c);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint8_t>(base + 7 * i);
  return img;
}

TEST(Data, ConvertChannels) {
  data::Image rgb(1, 2, 3);
  rgb.data = {255, 0, 0, 10, 200, 30};
  auto g = data::convert_channels(rgb, 1);
  EXPECT_EQ(g.data[0], 76);  // round(255 * 0.299)
  EXPECT_EQ(g.data[1], static_cast<uint8_t>((10 * 299 + 200 * 587 + 30 * 114 + 500) / 1000));
  auto back = data::convert_channels(g, 3);
  EXPECT_EQ(back.data, (std::vector<uint8_t>{76, 76, 76, g.data[1], g.data[1], g.data[1]}));
  data::Image rgba(1, 1, 4);
  rgba.data = {1, 2, 3, 4};
  EXPECT_EQ(data::convert_channels(rgba, 3).data, (std::vector<uint8_t>{1, 2, 3}));
}

TEST(Data, ImageFolderDecodesConvertsAndSkipsCorruptFiles) {
  fs::path root = fresh_dir("folder");
  fs::create_directories(root / "cat");
  fs::create_directories(root / "dog");
  data::write_png((root / "cat" / "a.png").string(), pattern(5, 6, 3, 0));
  data::write_bmp((root / "cat" / "b.bmp").string(), pattern(4, 4, 1, 3));
  data::write_png((root / "dog" / "c.png").string(), pattern(3, 7, 4, 9));
  // a JPEG that is not one: the SOI marker then garbage
  write_bytes(root / "dog" / "broken.jpg", {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x13, 0x37, 0x00});
  write_bytes(root / "dog" / "notes.txt", {'h', 'i'});
  data::ImageFolderDataset ds({.root = root.string(), .channels = 3, .limit = 0, .warn = false});
  EXPECT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.num_classes(), 2);
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(ds.skipped().size(), 2u);
  EXPECT_THAT(ds.skipped()[0], HasSubstr("broken.jpg"));
  EXPECT_THAT(ds.describe(), HasSubstr("2 skipped"));
  auto s0 = ds.get(0);
  EXPECT_EQ(s0.label, 0);
  EXPECT_EQ(s0.image.h, 5);
  EXPECT_EQ(s0.image.w, 6);
  EXPECT_EQ(s0.image.c, 3);
  EXPECT_EQ(s0.image.data, pattern(5, 6, 3, 0).data);  // PNG is lossless
  auto s1 = ds.get(1);                                 // gray BMP replicated to RGB
  EXPECT_EQ(s1.image.c, 3);
  EXPECT_EQ(s1.image.at(2, 3, 0), pattern(4, 4, 1, 3).at(2, 3, 0));
  EXPECT_EQ(s1.image.at(2, 3, 2), pattern(4, 4, 1, 3).at(2, 3, 0));
  auto s2 = ds.get(2);  // RGBA -> RGB
  EXPECT_EQ(s2.label, 1);
  EXPECT_EQ(s2.image.at(1, 1, 2), pattern(3, 7, 4, 9).at(1, 1, 2));
  // the same folder read as gray: 601-2 luma of the RGB pixels
  data::ImageFolderDataset gray({.root = root.string(), .channels = 1, .limit = 0, .warn = false});
  auto g0 = gray.get(0);
  EXPECT_EQ(g0.image.c, 1);
  auto p = pattern(5, 6, 3, 0);
  EXPECT_EQ(g0.image.at(1, 2, 0), (p.at(1, 2, 0) * 299 + p.at(1, 2, 1) * 587 + p.at(1, 2, 2) * 114 + 500) / 1000);
  EXPECT_THROW(ds.get(3), Error);
}

TEST(Data, ImageFolderBadInput) {
  EXPECT_THAT(error_of([] { data::ImageFolderDataset({.root = "/nonexistent/siam_images"}); }),
              HasSubstr("'/nonexistent/siam_images' does not exist"));
  fs::path root = fresh_dir("empty_class");
  fs::create_directories(root / "full");
  fs::create_directories(root / "empty");
  data::write_png((root / "full" / "x.png").string(), pattern(2, 2, 3, 0));
  EXPECT_THAT(error_of([&] { data::ImageFolderDataset({.root = root.string(), .warn = false}); }),
              HasSubstr("class folder '" + (root / "empty").string() + "' holds no decodable image"));
  // a flat folder is an unlabeled dataset
  fs::path flat = fresh_dir("flat");
  data::write_jpg((flat / "one.jpg").string(), pattern(8, 8, 3, 5));
  data::ImageFolderDataset unl({.root = flat.string(), .channels = 3});
  EXPECT_EQ(unl.size(), 1);
  EXPECT_EQ(unl.get(0).label, -1);
  EXPECT_EQ(unl.num_classes(), 0);
  // a PNG whose header is fine but whose body is cut: kept at construction, DecodeError from get()
  fs::path cut = fresh_dir("cut");
  data::write_png((cut / "cut.png").string(), pattern(64, 64, 3, 1));
  fs::resize_file(cut / "cut.png", 60);
  data::ImageFolderDataset c({.root = cut.string(), .channels = 3, .limit = 0, .warn = false});
  ASSERT_EQ(c.size(), 1);
  try {
    c.get(0);
    FAIL() << "no DecodeError";
  } catch (const data::DecodeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cut.png"));
    EXPECT_EQ(e.path(), (cut / "cut.png").string());
  }
}

std::vector<uint8_t> cifar_records(int n, int label_bytes, int base) {
  std::vector<uint8_t> b;
  for (int r = 0; r < n; ++r) {
    for (int l = 0; l < label_bytes; ++l) b.push_back(static_cast<uint8_t>((r + base + l * 3) % 10));
    for (int i = 0; i < 3072; ++i) b.push_back(static_cast<uint8_t>((i * 13 + r + base) & 0xFF));
  }
  return b;
}

TEST(Data, CifarBinaryBatches) {
  fs::path root = fresh_dir("cifar10");
  for (const std::string& f : data::CifarDataset::files(10, "train")) write_bytes(root / f, cifar_records(3, 1, f[11] - '0'));
  write_bytes(root / "test_batch.bin", cifar_records(2, 1, 7));
  data::CifarDataset tr({.root = root.string()});
  EXPECT_EQ(tr.size(), 15);
  EXPECT_EQ(tr.channels(), 3);
  auto s = tr.get(4);  // batch 2 (base 2), record 1
  EXPECT_EQ(s.label, (1 + 2) % 10);
  // pixel (y, x) channel c is stored at c * 1024 + y * 32 + x
  const int y = 5, x = 9;
  for (int c = 0; c < 3; ++c) EXPECT_EQ(s.image.at(y, x, c), ((c * 1024 + y * 32 + x) * 13 + 1 + 2) & 0xFF);
  data::CifarDataset te({.root = root.string(), .variant = 10, .split = "test", .channels = 1});
  EXPECT_EQ(te.size(), 2);
  EXPECT_EQ(te.get(0).image.c, 1);
  data::CifarDataset lim({.root = root.string(), .limit = 4});
  EXPECT_EQ(lim.size(), 4);
  // CIFAR-100: coarse and fine labels
  fs::path r100 = fresh_dir("cifar100");
  write_bytes(r100 / "train.bin", cifar_records(4, 2, 0));
  data::CifarDataset fine({.root = r100.string(), .variant = 100});
  data::CifarDataset coarse({.root = r100.string(), .variant = 100, .fine_labels = false});
  EXPECT_EQ(fine.get(2).label, (2 + 3) % 10);
  EXPECT_EQ(coarse.get(2).label, 2);
  EXPECT_EQ(fine.num_classes(), 100);
  // truncated and missing files
  auto bytes = cifar_records(2, 1, 0);
  bytes.resize(bytes.size() - 100);
  write_bytes(root / "test_batch.bin", bytes);
  EXPECT_THAT(error_of([&] { data::CifarDataset({.root = root.string(), .split = "test"}); }),
              HasSubstr("test_batch.bin' is truncated"));
  fs::remove(root / "data_batch_3.bin");
  EXPECT_THAT(error_of([&] { data::CifarDataset({.root = root.string()}); }),
              HasSubstr("data_batch_3.bin' does not exist"));
  EXPECT_THAT(error_of([] { data::CifarDataset({.root = "/nonexistent/cifar"}); }), HasSubstr("/nonexistent/cifar"));
}

void write_idx(const fs::path& p, std::vector<uint32_t> shape, int base) {
  std::vector<uint8_t> b = {0, 0, 0x08, static_cast<uint8_t>(shape.size())};
  size_t n = 1;
  for (uint32_t s : shape) {
    for (int k = 3; k >= 0; --k) b.push_back(static_cast<uint8_t>(s >> (8 * k)));
    n *= s;
  }
  for (size_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>((base + i) % 10 + (shape.size() > 1 ? 100 : 0)));
  write_bytes(p, b);
}

TEST(Data, IdxDataset) {
  fs::path root = fresh_dir("idx");
  write_idx(root / "train-images-idx3-ubyte", {4, 3, 2}, 0);
  write_idx(root / "train-labels-idx1-ubyte", {4}, 5);
  data::IdxDataset ds({.root = root.string(), .split = "train", .channels = 3});
  EXPECT_EQ(ds.size(), 4);
  auto s = ds.get(1);
  EXPECT_EQ(s.label, 6);
  EXPECT_EQ(s.image.h, 3);
  EXPECT_EQ(s.image.w, 2);
  EXPECT_EQ(s.image.c, 3);
  EXPECT_EQ(s.image.at(0, 1, 0), 100 + (6 + 1) % 10);
  EXPECT_EQ(s.image.at(0, 1, 2), s.image.at(0, 1, 0));
  write_idx(root / "train-labels-idx1-ubyte", {3}, 5);
  EXPECT_THAT(error_of([&] { data::IdxDataset({.root = root.string()}); }), HasSubstr("holds 4 images but"));
  EXPECT_THAT(error_of([] { data::IdxDataset({.root = "/nonexistent/fm"}); }), HasSubstr("'/nonexistent/fm'"));

  if (!fs::exists(data::kFashionMnistRoot)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  data::IdxDataset fm({.split = "test", .channels = 1, .limit = 100});
  EXPECT_EQ(fm.size(), 100);
  auto f = fm.get(0);
  EXPECT_EQ(f.image.h, 28);
  EXPECT_EQ(f.label, 9);  // the first Fashion-MNIST test image is an ankle boot
}

TEST(Data, SyntheticIsDeterministic) {
  data::SyntheticDataset a({.n = 5, .h = 8, .w = 9, .c = 3, .classes = 2, .seed = 3});
  data::SyntheticDataset b({.n = 5, .h = 8, .w = 9, .c = 3, .classes = 2, .seed = 3});
  data::SyntheticDataset c({.n = 5, .h = 8, .w = 9, .c = 3, .classes = 2, .seed = 4});
  EXPECT_EQ(a.get(4).image.data, b.get(4).image.data);
  EXPECT_NE(a.get(4).image.data, c.get(4).image.data);
  EXPECT_NE(a.get(3).image.data, a.get(4).image.data);
  EXPECT_EQ(a.get(3).label, 1);
  data::SyntheticDataset mem({pattern(2, 2, 1, 0), pattern(2, 3, 1, 1)}, {});
  EXPECT_EQ(mem.get(1).image.w, 3);
  EXPECT_EQ(mem.get(1).label, -1);
  EXPECT_THROW(data::SyntheticDataset({pattern(2, 2, 1, 0), pattern(2, 2, 3, 0)}, {}), Error);
}

TEST(Config, ParsesDataAndViews) {
  auto cfg = data::parse_views_config(R"(
train: {epochs: 3}      # other sections are left alone
data:
  kind: synthetic
  size: 10
  height: 12
  width: 16
  channels: 3
views:
  - name: global
    count: 2
    size: 8
    crop: {scale: [0.3, 1.0]}
    flip: 0.25
    color_jitter: {p: 0.8, brightness: 0.4, hue: 0.1}
    grayscale: 0.2
    blur: {p: 1.0, sigma: [0.5, 1.5]}
    solarize: {p: 0.2}
    normalize: {mean: [0.5, 0.5, 0.5], std: 0.25}
  - size: [6, 4]
    crop: false
)",
                                      "inline");
  EXPECT_EQ(cfg.data.kind, "synthetic");
  EXPECT_EQ(cfg.data.channels, 3);
  ASSERT_EQ(cfg.views.size(), 2u);
  const auto& v = cfg.views[0];
  EXPECT_EQ(v.name, "global");
  EXPECT_EQ(v.count, 2);
  EXPECT_DOUBLE_EQ(v.crop.scale_min, 0.3);
  EXPECT_DOUBLE_EQ(v.flip_p, 0.25);
  EXPECT_DOUBLE_EQ(v.jitter.brightness, 0.4);
  EXPECT_DOUBLE_EQ(v.jitter.contrast, 0.0);
  EXPECT_DOUBLE_EQ(v.blur.sigma_max, 1.5);
  EXPECT_DOUBLE_EQ(v.solarize.p, 0.2);
  EXPECT_EQ(v.std, (std::vector<float>{0.25f}));
  EXPECT_EQ(cfg.views[1].height, 6);
  EXPECT_EQ(cfg.views[1].width, 4);
  EXPECT_FALSE(cfg.views[1].crop.enabled);
  auto ds = data::make_dataset(cfg.data);
  EXPECT_EQ(ds->size(), 10);
  EXPECT_EQ(ds->get(0).image.w, 16);
}

TEST(Config, RejectsUnknownKeysAndBadValues) {
  auto err = [](const std::string& text) { return error_of([&] { data::parse_views_config(text, "t.yaml"); }); };
  EXPECT_THAT(err("views:\n  - size: 8\n    color_jitter: {brigthness: 0.4}\n"),
              HasSubstr("views[0].color_jitter.brigthness: unknown key"));
  EXPECT_THAT(err("data: {kind: fashion-mnist, rooot: /x}\nviews: [{size: 8}]\n"), HasSubstr("data.rooot: unknown key"));
  EXPECT_THAT(err("data: {kind: imagenet}\nviews: [{size: 8}]\n"), HasSubstr("data.kind: unknown dataset kind 'imagenet'"));
  EXPECT_THAT(err("views:\n  - size: 8\n    flip: often\n"), HasSubstr("views[0].flip: expected a number, got 'often'"));
  EXPECT_THAT(err("views:\n  - size: 8\n    flip: 2\n"), HasSubstr("views[0].flip: a probability in [0, 1], got 2"));
  EXPECT_THAT(err("views:\n  - size: 8\n  - size: 8\n    crop: {scale: [0.9, 0.1]}\n"),
              HasSubstr("views[1].crop.scale: min 0.9 is above max 0.1"));
  EXPECT_THAT(err("views:\n  - size: 8\n    color_jitter: {hue: 0.7}\n"), HasSubstr("views[0].color_jitter.hue"));
  EXPECT_THAT(err("views:\n  - count: 2\n"), HasSubstr("missing key 'size'"));
  EXPECT_THAT(err("data: {kind: mnist}\n"), HasSubstr("no views: section"));
  EXPECT_THAT(err("views: [size: 8\n"), HasSubstr("not valid YAML"));
  EXPECT_THAT(err("data: {channels: 1}\nviews:\n  - size: 8\n    normalize: {mean: [1, 2, 3], std: [1, 1, 1]}\n"),
              HasSubstr("views[0].normalize: 3 values for 1-channel images"));
  EXPECT_THAT(error_of([] { data::load_views_config("/nonexistent/v.yaml"); }), HasSubstr("'/nonexistent/v.yaml' does not exist"));
}

TEST(Config, ShippedSimclrFashionMnistConfigLoads) {
  const std::string path = "configs/views_simclr_fmnist.yaml";
  if (!fs::exists(path)) GTEST_SKIP() << "run from the source root";
  auto cfg = data::load_views_config(path);
  EXPECT_EQ(cfg.data.kind, "fashion-mnist");
  EXPECT_EQ(cfg.data.channels, 1);
  ASSERT_FALSE(cfg.views.empty());
  EXPECT_EQ(cfg.views[0].height, 28);
}

}  // namespace
}  // namespace siam

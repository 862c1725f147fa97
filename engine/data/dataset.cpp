// Image helpers and the IDX, CIFAR and synthetic datasets (ImageFolder is in image_folder.cpp).
#include "engine/data/dataset.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/data/idx.h"
#include "kernels/common/philox.h"

namespace siam::data {

Tensor Image::to_tensor() const {
  Tensor t = empty({h, w, c}, DType::u8);
  std::memcpy(t.data<uint8_t>(), data.data(), data.size());
  return t;
}

namespace {
inline uint8_t luma601(int r, int g, int b) { return static_cast<uint8_t>((r * 299 + g * 587 + b * 114 + 500) / 1000); }
}  // namespace

Image convert_channels(const Image& src, int channels) {
  SIAM_CHECK(src.c >= 1 && src.c <= 4, "convert_channels: source has ", src.c, " channels (expected 1 to 4)");
  SIAM_CHECK(channels == 1 || channels == 3 || channels == 4, "convert_channels: target of ", channels,
             " channels (expected 1, 3 or 4)");
  if (src.c == channels) return src;
  Image out(src.h, src.w, channels);
  const size_t n = static_cast<size_t>(src.h) * src.w;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &src.data[i * src.c];
    uint8_t* q = &out.data[i * channels];
    uint8_t r, g, b, a = 255;
    if (src.c <= 2) {
      r = g = b = p[0];
      if (src.c == 2) a = p[1];
    } else {
      r = p[0], g = p[1], b = p[2];
      if (src.c == 4) a = p[3];
    }
    if (channels == 1) {
      q[0] = src.c <= 2 ? r : luma601(r, g, b);
    } else {
      q[0] = r, q[1] = g, q[2] = b;
      if (channels == 4) q[3] = a;
    }
  }
  return out;
}

// ---- IDX --------------------------------------------------------------------------------------------
IdxDataset::IdxDataset(const IdxOptions& opt) : opt_(opt) {
  SIAM_CHECK(opt.channels == 1 || opt.channels == 3, "IdxDataset: channels must be 1 or 3, got ", opt.channels);
  SIAM_CHECK(std::filesystem::is_directory(opt.root), "IdxDataset: root '", opt.root, "' is not a directory");
  std::string ip = idx_path(opt.root, opt.split, false), lp = idx_path(opt.root, opt.split, true);
  images_ = read_idx(ip);
  labels_ = read_idx(lp);
  SIAM_CHECK(images_.dim() == 3, "IdxDataset: '", ip, "' has shape ", shape_str(images_.shape()),
             ", expected (N, H, W)");
  SIAM_CHECK(labels_.dim() == 1, "IdxDataset: '", lp, "' has shape ", shape_str(labels_.shape()), ", expected (N)");
  SIAM_CHECK(labels_.size(0) == images_.size(0), "IdxDataset: '", ip, "' holds ", images_.size(0), " images but '",
             lp, "' holds ", labels_.size(0), " labels");
  n_ = images_.size(0);
  if (opt.limit > 0) n_ = std::min(n_, opt.limit);
  h_ = images_.size(1);
  w_ = images_.size(2);
}

Sample IdxDataset::get(int64_t index) const {
  SIAM_CHECK(index >= 0 && index < n_, "IdxDataset: index ", index, " out of range [0, ", n_, ")");
  Sample s;
  s.image = Image(static_cast<int>(h_), static_cast<int>(w_), opt_.channels);
  const uint8_t* p = images_.data<uint8_t>() + index * h_ * w_;
  if (opt_.channels == 1) {
    std::memcpy(s.image.data.data(), p, static_cast<size_t>(h_ * w_));
  } else {
    for (int64_t i = 0; i < h_ * w_; ++i) s.image.data[3 * i] = s.image.data[3 * i + 1] = s.image.data[3 * i + 2] = p[i];
  }
  s.label = labels_.data<uint8_t>()[index];
  return s;
}

std::string IdxDataset::describe() const {
  return detail::str_cat("idx ", opt_.root, " (", opt_.split, "): ", n_, " images ", h_, "x", w_, "x", opt_.channels);
}

// ---- CIFAR ------------------------------------------------------------------------------------------
std::vector<std::string> CifarDataset::files(int variant, const std::string& split) {
  SIAM_CHECK(variant == 10 || variant == 100, "CifarDataset: variant must be 10 or 100, got ", variant);
  SIAM_CHECK(split == "train" || split == "test", "CifarDataset: split must be 'train' or 'test', got '", split, "'");
  if (variant == 100) return {split + ".bin"};
  if (split == "test") return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
}

CifarDataset::CifarDataset(const CifarOptions& opt) : opt_(opt) {
  SIAM_CHECK(opt.channels == 1 || opt.channels == 3, "CifarDataset: channels must be 1 or 3, got ", opt.channels);
  SIAM_CHECK(std::filesystem::is_directory(opt.root), "CifarDataset: root '", opt.root, "' is not a directory");
  const size_t label_bytes = opt.variant == 100 ? 2 : 1, rec = label_bytes + 3072;
  for (const std::string& name : files(opt.variant, opt.split)) {
    std::string path = opt.root + "/" + name;
    SIAM_CHECK(std::filesystem::exists(path), "CifarDataset: file '", path, "' does not exist (CIFAR-", opt.variant,
               " binary version expected in '", opt.root, "')");
    std::ifstream f(path, std::ios::binary);
    SIAM_CHECK(f.good(), "CifarDataset: cannot open '", path, "'");
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    SIAM_CHECK(!bytes.empty() && bytes.size() % rec == 0, "CifarDataset: '", path, "' is truncated or not a CIFAR-",
               opt.variant, " batch: ", bytes.size(), " bytes is not a whole number of ", rec, "-byte records");
    const size_t count = bytes.size() / rec;
    for (size_t r = 0; r < count; ++r) {
      const uint8_t* p = bytes.data() + r * rec;
      int64_t label = opt.variant == 100 ? (opt.fine_labels ? p[1] : p[0]) : p[0];
      const int64_t max_label = num_classes();
      SIAM_CHECK(label < max_label, "CifarDataset: '", path, "' record ", r, " has label ", label, " (expected < ",
                 max_label, "): not a CIFAR-", opt.variant, " batch");
      labels_.push_back(label);
      pixels_.insert(pixels_.end(), p + label_bytes, p + rec);
    }
    if (opt.limit > 0 && static_cast<int64_t>(labels_.size()) >= opt.limit) break;
  }
  n_ = static_cast<int64_t>(labels_.size());
  if (opt.limit > 0) n_ = std::min(n_, opt.limit);
}

Sample CifarDataset::get(int64_t index) const {
  SIAM_CHECK(index >= 0 && index < n_, "CifarDataset: index ", index, " out of range [0, ", n_, ")");
  Sample s;
  s.image = Image(32, 32, opt_.channels);
  const uint8_t* p = pixels_.data() + index * 3072;  // (3, 32, 32)
  for (int i = 0; i < 1024; ++i) {
    if (opt_.channels == 3) {
      s.image.data[3 * i] = p[i];
      s.image.data[3 * i + 1] = p[1024 + i];
      s.image.data[3 * i + 2] = p[2048 + i];
    } else {
      s.image.data[i] = luma601(p[i], p[1024 + i], p[2048 + i]);
    }
  }
  s.label = labels_[static_cast<size_t>(index)];
  return s;
}

std::string CifarDataset::describe() const {
  return detail::str_cat("cifar", opt_.variant, " ", opt_.root, " (", opt_.split, "): ", n_, " images 32x32x",
                         opt_.channels);
}

// ---- synthetic --------------------------------------------------------------------------------------
SyntheticDataset::SyntheticDataset(const SyntheticOptions& opt) : channels_(opt.c), classes_(opt.classes) {
  SIAM_CHECK(opt.n > 0 && opt.h > 0 && opt.w > 0 && opt.c >= 1 && opt.c <= 4 && opt.classes > 0,
             "SyntheticDataset: bad options n=", opt.n, " h=", opt.h, " w=", opt.w, " c=", opt.c, " classes=",
             opt.classes);
  images_.reserve(static_cast<size_t>(opt.n));
  for (int64_t i = 0; i < opt.n; ++i) {
    // A few random parameters per image: a blob at (cy, cx) of radius r over a gradient, per-channel tints,
    // plus a little per-pixel noise, so crops, flips and color ops all change something visible.
    Philox4 b0 = philox_block(opt.seed, 0x53594e54ull /* "SYNT" */, static_cast<uint64_t>(2 * i));
    Philox4 b1 = philox_block(opt.seed, 0x53594e54ull, static_cast<uint64_t>(2 * i + 1));
    const float cy = philox_uniform(b0.v[0]) * opt.h, cx = philox_uniform(b0.v[1]) * opt.w;
    const float r = (0.15f + 0.3f * philox_uniform(b0.v[2])) * std::min(opt.h, opt.w);
    const float angle = 6.2831853f * philox_uniform(b0.v[3]);
    Image img(opt.h, opt.w, opt.c);
    for (int y = 0; y < opt.h; ++y)
      for (int x = 0; x < opt.w; ++x) {
        const float d = std::sqrt((y - cy) * (y - cy) + (x - cx) * (x - cx));
        const float grad = 0.5f + 0.5f * std::cos(angle) * (2.0f * x / opt.w - 1) + 0.5f * std::sin(angle) * (2.0f * y / opt.h - 1);
        const float blob = d < r ? 1.0f : 0.0f;
        for (int c = 0; c < opt.c; ++c) {
          const float tint = philox_uniform(c == 0 ? b1.v[0] : c == 1 ? b1.v[1] : b1.v[2]);
          float v = 0.35f * grad + 0.55f * blob * (0.3f + 0.7f * tint) + 0.1f * tint;
          uint32_t noise = philox_block(opt.seed, 0x4e4f4953ull /* "NOIS" */,
                                        static_cast<uint64_t>(((i * opt.h + y) * opt.w + x) * opt.c + c)).v[0];
          v += 0.04f * (philox_uniform(noise) - 0.5f);
          img.at(y, x, c) = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f));
        }
      }
    images_.push_back(std::move(img));
    labels_.push_back(i % opt.classes);
  }
}

SyntheticDataset::SyntheticDataset(std::vector<Image> images, std::vector<int64_t> labels)
    : images_(std::move(images)), labels_(std::move(labels)) {
  SIAM_CHECK(!images_.empty(), "SyntheticDataset: no images");
  SIAM_CHECK(labels_.empty() || labels_.size() == images_.size(), "SyntheticDataset: ", images_.size(),
             " images but ", labels_.size(), " labels");
  if (labels_.empty()) labels_.assign(images_.size(), -1);
  channels_ = images_[0].c;
  for (size_t i = 0; i < images_.size(); ++i) {
    SIAM_CHECK(images_[i].c == channels_, "SyntheticDataset: image ", i, " has ", images_[i].c,
               " channels, image 0 has ", channels_);
    SIAM_CHECK(images_[i].data.size() == static_cast<size_t>(images_[i].h) * images_[i].w * images_[i].c &&
                   images_[i].h > 0 && images_[i].w > 0,
               "SyntheticDataset: image ", i, " has inconsistent size");
    classes_ = std::max(classes_, labels_[i] + 1);
  }
}

Sample SyntheticDataset::get(int64_t index) const {
  SIAM_CHECK(index >= 0 && index < size(), "SyntheticDataset: index ", index, " out of range [0, ", size(), ")");
  return Sample{images_[static_cast<size_t>(index)], labels_[static_cast<size_t>(index)]};
}

std::string SyntheticDataset::describe() const {
  return detail::str_cat("synthetic: ", images_.size(), " images ", images_[0].h, "x", images_[0].w, "x", channels_);
}

}  // namespace siam::data

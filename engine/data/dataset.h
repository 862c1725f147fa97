// Datasets: random access to (image, label) samples. An image is u8, interleaved (H, W, C) as decoders and
// the IDX/CIFAR files give it; the view pipeline (engine/data/views.h) turns it into f32 (C, H', W').
// Every dataset is safe to read from several threads at once (get() is const and keeps no shared state
// beyond what it guards itself), which the loader relies on.
//
//   IdxDataset          MNIST / Fashion-MNIST IDX files, plain or gzip (default root: Fashion-MNIST's package)
//   CifarDataset        CIFAR-10 / CIFAR-100 binary batches
//   ImageFolderDataset  root/<class>/<image>, or a flat folder of images (unlabeled); JPEG, PNG, BMP, ...
//   SyntheticDataset    deterministic in-memory images (tests, benchmarks) or images handed over in memory
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace siam::data {

constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";

// A u8 image stored interleaved: pixel (y, x) channel c is data[(y * w + x) * c_count + c].
struct Image {
  int h = 0, w = 0, c = 0;
  std::vector<uint8_t> data;  // (H, W, C)

  Image() = default;
  Image(int h_, int w_, int c_) : h(h_), w(w_), c(c_), data(static_cast<size_t>(h_) * w_ * c_) {}
  uint8_t& at(int y, int x, int ch) { return data[(static_cast<size_t>(y) * w + x) * c + ch]; }
  uint8_t at(int y, int x, int ch) const { return data[(static_cast<size_t>(y) * w + x) * c + ch]; }
  Tensor to_tensor() const;  // (H, W, C) u8 copy
};

struct Sample {
  Image image;
  int64_t label = -1;  // -1: unlabeled
};

// Converts between channel counts: 1 -> 3 replicates; 3 -> 1 uses ITU-R 601-2 luma
// (299 R + 587 G + 114 B) / 1000 rounded, as PIL's convert("L"); 4 -> 3 and 2 -> 1 drop alpha; 4 -> 1 and
// 2 -> 3 combine the two. Throws for other counts.
Image convert_channels(const Image& src, int channels);

// Thrown by a dataset when one sample cannot be decoded (a corrupt file inside an ImageFolder). The loader
// catches it, skips the sample (substitutes the next good one), counts it and names it in a warning.
class DecodeError : public Error {
 public:
  DecodeError(const std::string& path, const std::string& msg) : Error(msg), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int channels() const = 0;            // of every image get() returns
  virtual Sample get(int64_t index) const = 0;  // 0 <= index < size(); throws siam::Error when out of range
  virtual int64_t num_classes() const { return 0; }  // 0: unknown / unlabeled
  virtual std::string describe() const = 0;          // one line for logs: kind, root, count, shape
};

// ---- IDX (MNIST-style) ------------------------------------------------------------------------------
struct IdxOptions {
  std::string root = kFashionMnistRoot;
  std::string split = "train";  // train | test
  int channels = 1;             // 1, or 3 to replicate gray into RGB
  int64_t limit = 0;            // keep only the first N samples (0: all)
};
class IdxDataset : public Dataset {
 public:
  explicit IdxDataset(const IdxOptions& opt);
  int64_t size() const override { return n_; }
  int channels() const override { return opt_.channels; }
  Sample get(int64_t index) const override;
  int64_t num_classes() const override { return 10; }
  std::string describe() const override;

 private:
  IdxOptions opt_;
  Tensor images_;  // (N, H, W) u8
  Tensor labels_;  // (N) u8
  int64_t n_ = 0, h_ = 0, w_ = 0;
};

// ---- CIFAR binary batches ---------------------------------------------------------------------------
// CIFAR-10: root holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin, records of 1 label byte +
// 3072 bytes (R plane, G plane, B plane, each 32x32 row-major). CIFAR-100: train.bin / test.bin, records of
// a coarse and a fine label byte + 3072 bytes; `fine_labels` picks which label is returned.
struct CifarOptions {
  std::string root;
  int variant = 10;             // 10 or 100
  std::string split = "train";  // train | test
  int channels = 3;             // 3, or 1 for gray (601-2 luma)
  bool fine_labels = true;      // CIFAR-100 only
  int64_t limit = 0;
};
class CifarDataset : public Dataset {
 public:
  explicit CifarDataset(const CifarOptions& opt);
  int64_t size() const override { return n_; }
  int channels() const override { return opt_.channels; }
  Sample get(int64_t index) const override;
  int64_t num_classes() const override { return opt_.variant == 10 ? 10 : (opt_.fine_labels ? 100 : 20); }
  std::string describe() const override;
  // The files read for (variant, split), in order.
  static std::vector<std::string> files(int variant, const std::string& split);

 private:
  CifarOptions opt_;
  std::vector<uint8_t> pixels_;  // (N, 3, 32, 32) as stored
  std::vector<int64_t> labels_;  // (N)
  int64_t n_ = 0;
};

// ---- ImageFolder ------------------------------------------------------------------------------------
// root/<class>/<file>: classes are the subfolders in sorted order, labels their positions. A root with no
// subfolders but image files is an unlabeled dataset (labels -1). Files are listed in sorted order; each
// file's header is checked with stb_image at construction, and a file that is not a decodable image is
// skipped, counted (skipped()) and named in a warning on stderr. A missing root, an empty class folder or
// no image at all is a siam::Error naming the path. A file whose header passes but whose body fails to
// decode throws DecodeError from get(), which the loader turns into a skip.
struct ImageFolderOptions {
  std::string root;
  int channels = 3;  // every image is converted to this many channels (1, 3 or 4)
  int64_t limit = 0;
  bool warn = true;  // print the skipped files on stderr
};
class ImageFolderDataset : public Dataset {
 public:
  explicit ImageFolderDataset(const ImageFolderOptions& opt);
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int channels() const override { return opt_.channels; }
  Sample get(int64_t index) const override;
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::string describe() const override;
  const std::vector<std::string>& classes() const { return classes_; }
  const std::string& path(int64_t index) const { return files_.at(static_cast<size_t>(index)); }
  // Files skipped at construction because their header is not a decodable image.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  ImageFolderOptions opt_;
  std::vector<std::string> classes_;
  std::vector<std::string> files_;
  std::vector<int64_t> labels_;
  std::vector<std::string> skipped_;
};

// ---- in memory --------------------------------------------------------------------------------------
// Either explicit images (all with the same channel count) or `n` generated ones: image i is a smooth
// pattern of (h, w, c) whose content depends only on (seed, i), label i % classes.
struct SyntheticOptions {
  int64_t n = 64;
  int h = 32, w = 32, c = 3;
  int64_t classes = 10;
  uint64_t seed = 0;
};
class SyntheticDataset : public Dataset {
 public:
  explicit SyntheticDataset(const SyntheticOptions& opt);
  SyntheticDataset(std::vector<Image> images, std::vector<int64_t> labels);
  int64_t size() const override { return static_cast<int64_t>(images_.size()); }
  int channels() const override { return channels_; }
  Sample get(int64_t index) const override;
  int64_t num_classes() const override { return classes_; }
  std::string describe() const override;

 private:
  std::vector<Image> images_;
  std::vector<int64_t> labels_;
  int channels_ = 0;
  int64_t classes_ = 0;
};

// stb_image helpers (the one translation unit that compiles stb lives in engine/data/stb_impl.cpp).
// decode_image: a file's bytes -> Image with `channels` channels (0: as stored); throws DecodeError naming
// `path` when stb cannot decode it.
Image decode_image(const std::string& path, int channels);
// probe_image: reads only the header; false when stb does not recognize a supported image.
bool probe_image(const std::string& path, int* h, int* w, int* c);
// write_png: writes an (H, W, C) image (C in 1..4); throws siam::Error naming the path on failure.
void write_png(const std::string& path, const Image& img);
void write_bmp(const std::string& path, const Image& img);
void write_jpg(const std::string& path, const Image& img, int quality = 90);

}  // namespace siam::data

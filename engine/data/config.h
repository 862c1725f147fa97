// The `data:` and `views:` sections of a YAML config (yaml-cpp), and the dataset they name.
//
//   data:
//     kind: fashion-mnist   # fashion-mnist | mnist | idx | cifar10 | cifar100 | image_folder | synthetic
//     root: /usr/share/datasets/fashion-mnist   # default for fashion-mnist; required for the others
//     split: train          # train | test (idx, cifar)
//     channels: 1           # 0 or absent: the dataset's own (1 for idx, 3 otherwise)
//     limit: 0              # use only the first N samples (0: all)
//     # synthetic only: size (number of images), height, width, classes, seed
//   views:                  # one entry per pipeline; the order of the ops is fixed (engine/data/views.h)
//     - name: global
//       count: 2            # this pipeline gives `count` views (multi-crop: several entries)
//       size: 28            # or [height, width]
//       crop: {scale: [0.2, 1.0], ratio: [0.75, 1.3333]}   # or `crop: false` for a plain resize
//       flip: 0.5
//       pad_crop: {padding: 4, mode: reflect}   # RandomCrop(size, padding) after the flip; mode reflect | zeros
//       randaugment: {num_ops: 2, magnitude: 9, num_magnitude_bins: 31}   # torchvision RandAugment
//       color_jitter: {p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1}
//       grayscale: 0.2
//       blur: {p: 0.5, sigma: [0.1, 2.0], kernel_frac: 0.1}
//       solarize: {p: 0.2, threshold: 0.5}
//       normalize: {mean: [0.286], std: [0.353]}
//
// Other top-level sections (model:, train:, ...) belong to other readers and are left alone; inside data:
// and views: an unknown key or a bad value is a siam::Error naming the file, the dotted key and the value.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/views.h"

namespace siam::data {

struct DataConfig {
  std::string kind = "fashion-mnist";
  std::string root;  // empty: the kind's default (fashion-mnist only)
  std::string split = "train";
  int channels = 0;
  int64_t limit = 0;
  // synthetic
  int64_t size = 64;
  int height = 32, width = 32;
  int64_t classes = 10;
  uint64_t seed = 0;
};

struct ViewsConfig {
  DataConfig data;
  std::vector<ViewSpec> views;
};

// Parses a YAML file / text (`source` names it in messages). A missing views: section is an error.
ViewsConfig load_views_config(const std::string& path);
ViewsConfig parse_views_config(const std::string& yaml_text, const std::string& source);

// The dataset a DataConfig names, with channels resolved (DataConfig::channels 0 -> the natural count).
std::shared_ptr<Dataset> make_dataset(const DataConfig& cfg);

}  // namespace siam::data

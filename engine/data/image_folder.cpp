// ImageFolderDataset: root/<class>/<image files>, decoded with stb_image on every get().
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "engine/data/dataset.h"

namespace siam::data {

namespace fs = std::filesystem;

namespace {
std::vector<fs::path> sorted_entries(const fs::path& dir, bool dirs) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden files and folders
    if (dirs ? e.is_directory() : e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

ImageFolderDataset::ImageFolderDataset(const ImageFolderOptions& opt) : opt_(opt) {
  SIAM_CHECK(opt.channels == 1 || opt.channels == 3 || opt.channels == 4, "ImageFolderDataset: channels must be 1, 3 or 4, got ",
             opt.channels);
  SIAM_CHECK(fs::exists(opt.root), "ImageFolderDataset: path '", opt.root, "' does not exist");
  SIAM_CHECK(fs::is_directory(opt.root), "ImageFolderDataset: path '", opt.root, "' is not a directory");
  auto add_files = [&](const fs::path& dir, int64_t label) {
    int64_t kept = 0;
    for (const fs::path& f : sorted_entries(dir, false)) {
      if (!probe_image(f.string(), nullptr, nullptr, nullptr)) {
        skipped_.push_back(f.string());
        continue;
      }
      files_.push_back(f.string());
      labels_.push_back(label);
      ++kept;
    }
    return kept;
  };
  std::vector<fs::path> class_dirs = sorted_entries(opt.root, true);
  if (class_dirs.empty()) {
    add_files(opt.root, -1);  // a flat, unlabeled folder
  } else {
    for (const fs::path& d : class_dirs) {
      const int64_t label = static_cast<int64_t>(classes_.size());
      classes_.push_back(d.filename().string());
      const int64_t kept = add_files(d, label);
      SIAM_CHECK(kept > 0, "ImageFolderDataset: class folder '", d.string(), "' holds no decodable image");
    }
  }
  SIAM_CHECK(!files_.empty(), "ImageFolderDataset: no image found in '", opt.root, "'");
  if (opt.warn && !skipped_.empty()) {
    std::fprintf(stderr, "warning: ImageFolderDataset '%s': skipped %zu undecodable file(s):", opt.root.c_str(),
                 skipped_.size());
    for (size_t i = 0; i < skipped_.size() && i < 10; ++i) std::fprintf(stderr, " %s", skipped_[i].c_str());
    std::fprintf(stderr, "%s\n", skipped_.size() > 10 ? " ..." : "");
  }
  if (opt.limit > 0 && static_cast<int64_t>(files_.size()) > opt.limit) {
    files_.resize(static_cast<size_t>(opt.limit));
    labels_.resize(static_cast<size_t>(opt.limit));
  }
}

Sample ImageFolderDataset::get(int64_t index) const {
  SIAM_CHECK(index >= 0 && index < size(), "ImageFolderDataset: index ", index, " out of range [0, ", size(), ")");
  Sample s;
  s.image = decode_image(files_[static_cast<size_t>(index)], opt_.channels);
  s.label = labels_[static_cast<size_t>(index)];
  return s;
}

std::string ImageFolderDataset::describe() const {
  return detail::str_cat("image_folder ", opt_.root, ": ", files_.size(), " images in ", classes_.size(),
                         " classes, ", opt_.channels, " channels", skipped_.empty() ? "" : ", ",
                         skipped_.empty() ? std::string() : std::to_string(skipped_.size()) + " skipped");
}

}  // namespace siam::data

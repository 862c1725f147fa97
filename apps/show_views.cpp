// siam show-views --config FILE --out views.png: a grid PNG, one row per source image: the image itself,
// then each of its views as the method sees them (normalization undone for display, clamped to [0, 1]).
// Rows are samples spread evenly over the dataset; the views are exactly those the loader would produce
// for (seed, epoch, sample index, view). One line per row on stdout names the sample and each view's
// sampled parameters.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/options.h"
#include "engine/data/config.h"
#include "engine/data/randaugment.h"
#include "engine/data/views.h"

namespace siam::app {

namespace {

const char* kShowViewsUsage =
    "usage: siam show-views --config FILE --out views.png [--rows N (8)] [--seed S (0)] [--epoch E (0)]\n"
    "                       [--scale K (0: pick so a cell is at least 96 pixels)]\n";


std::string params_str(const data::ViewSpec& spec, const data::ViewParams& p) {
  char buf[256];
  int n = std::snprintf(buf, sizeof buf, "crop(t%d l%d h%d w%d)", p.box.top, p.box.left, p.box.height, p.box.width);
  std::string s(buf, static_cast<size_t>(n));
  if (p.flip) s += " flip";
  if (spec.pad_crop.padding > 0) {
    n = std::snprintf(buf, sizeof buf, " pad_crop(t%d l%d)", p.pad_top, p.pad_left);
    s.append(buf, static_cast<size_t>(n));
  }
  for (int i = 0; i < p.ra_count; ++i) {
    n = std::snprintf(buf, sizeof buf, "%s%s%+.3g", i == 0 ? " randaug(" : " ", data::randaug_op_name(p.ra[i].op),
                      p.ra[i].magnitude);
    s.append(buf, static_cast<size_t>(n));
    if (i + 1 == p.ra_count) s += ")";
  }
  if (p.jitter) {
    s += " jitter(";
    const char* names[4] = {"b", "c", "s", "h"};
    const float vals[4] = {p.brightness, p.contrast, p.saturation, p.hue};
    const double on[4] = {spec.jitter.brightness, spec.jitter.contrast, spec.jitter.saturation, spec.jitter.hue};
    bool first = true;
    for (int k : p.order) {
      if (on[k] <= 0) continue;
      n = std::snprintf(buf, sizeof buf, "%s%s%.2f", first ? "" : " ", names[k], vals[k]);
      s.append(buf, static_cast<size_t>(n));
      first = false;
    }
    s += ")";
  }
  if (p.gray) s += " gray";
  if (p.blur) {
    n = std::snprintf(buf, sizeof buf, " blur(k%d s%.2f)", p.blur_ksize, p.blur_sigma);
    s.append(buf, static_cast<size_t>(n));
  }
  if (p.solarize) s += " solarize";
  return s;
}

}  // namespace

int show_views(int argc, char** argv) {
  Options opt(argc, argv, 2, {"config", "out", "rows", "seed", "epoch", "scale"}, kShowViewsUsage);
  if (opt.help()) {
    std::fputs(kShowViewsUsage, stdout);
    return 0;
  }
  const std::string config_path = opt.required("config", "FILE"), out_path = opt.required("out", "FILE.png");
  const int64_t rows = opt.integer("rows", 8);
  const uint64_t seed = static_cast<uint64_t>(opt.integer("seed", 0));
  const uint64_t epoch = static_cast<uint64_t>(opt.integer("epoch", 0));
  int64_t scale = opt.integer("scale", 0);
  SIAM_CHECK(rows >= 1 && rows <= 256, "--rows must be in [1, 256], got ", rows);

  data::ViewsConfig cfg = data::load_views_config(config_path);
  std::shared_ptr<data::Dataset> ds = data::make_dataset(cfg.data);
  data::ViewPipeline pipe(cfg.views, ds->channels());
  const int C = ds->channels(), V = pipe.num_views();
  const int64_t n_rows = std::min<int64_t>(rows, ds->size());
  std::printf("show-views: %s, %d view(s) per image\n", ds->describe().c_str(), V);

  // Sources and views (C, H, W) in [0, 1].
  struct Cell {
    int h, w;
    std::vector<float> px;  // (C, h, w)
  };
  std::vector<std::vector<Cell>> grid;
  int cell_h = 0, cell_w = 0;
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t index = r * ds->size() / n_rows;
    data::Sample s = ds->get(index);
    std::vector<Cell> row;
    Cell src{s.image.h, s.image.w, std::vector<float>(static_cast<size_t>(C) * s.image.h * s.image.w)};
    for (int y = 0; y < s.image.h; ++y)
      for (int x = 0; x < s.image.w; ++x)
        for (int c = 0; c < C; ++c)
          src.px[(static_cast<size_t>(c) * s.image.h + y) * s.image.w + x] = s.image.at(y, x, c) / 255.0f;
    row.push_back(std::move(src));
    std::string line = "row " + std::to_string(r) + ": sample " + std::to_string(index) + " label " + std::to_string(s.label);
    for (int v = 0; v < V; ++v) {
      const data::ViewSpec& spec = pipe.view(v);
      data::ViewParams p = data::sample_view_params(spec, s.image.h, s.image.w, data::RandKey{seed, epoch, index, v});
      Cell cell{spec.height, spec.width, std::vector<float>(static_cast<size_t>(C) * spec.height * spec.width)};
      data::apply_view(s.image, spec, p, cell.px.data());
      if (!spec.mean.empty()) {  // undo the normalization for display
        const size_t plane = static_cast<size_t>(spec.height) * spec.width;
        for (int c = 0; c < C; ++c) {
          const float m = spec.mean.size() == 1 ? spec.mean[0] : spec.mean[static_cast<size_t>(c)];
          const float sd = spec.std.size() == 1 ? spec.std[0] : spec.std[static_cast<size_t>(c)];
          for (size_t i = 0; i < plane; ++i) cell.px[c * plane + i] = cell.px[c * plane + i] * sd + m;
        }
      }
      line += "\n  view " + std::to_string(v) + " (" + spec.name + "): " + params_str(spec, p);
      row.push_back(std::move(cell));
    }
    for (const Cell& c : row) cell_h = std::max(cell_h, c.h), cell_w = std::max(cell_w, c.w);
    std::printf("%s\n", line.c_str());
    grid.push_back(std::move(row));
  }
  if (scale == 0) scale = std::max<int64_t>(1, (96 + std::min(cell_h, cell_w) - 1) / std::min(cell_h, cell_w));
  SIAM_CHECK(scale <= 64, "--scale must be at most 64, got ", scale);
  const int k = static_cast<int>(scale), gap = 4;
  const int cols = V + 1;
  const int64_t out_w = static_cast<int64_t>(cols) * (cell_w * k + gap) + gap;
  const int64_t out_h = n_rows * (cell_h * k + gap) + gap;
  SIAM_CHECK(out_w * out_h <= 64ll << 20, "the grid would be ", out_w, "x", out_h, " pixels; use a smaller --scale or --rows");
  const int oc = C == 4 ? 4 : C;
  data::Image out(static_cast<int>(out_h), static_cast<int>(out_w), oc);
  std::fill(out.data.begin(), out.data.end(), static_cast<uint8_t>(48));
  for (size_t r = 0; r < grid.size(); ++r)
    for (size_t col = 0; col < grid[r].size(); ++col) {
      const Cell& cell = grid[r][col];
      const int y0 = gap + static_cast<int>(r) * (cell_h * k + gap), x0 = gap + static_cast<int>(col) * (cell_w * k + gap);
      // a source wider than the cell of the views is centered; views are drawn nearest-neighbor upscaled
      for (int y = 0; y < cell.h * k; ++y)
        for (int x = 0; x < cell.w * k; ++x)
          for (int c = 0; c < oc; ++c) {
            float v = cell.px[(static_cast<size_t>(c) * cell.h + y / k) * cell.w + x / k];
            out.at(y0 + y + (cell_h - cell.h) * k / 2, x0 + x + (cell_w - cell.w) * k / 2, c) =
                static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f));
          }
    }
  data::write_png(out_path, out);
  std::printf("wrote %s: %lld rows x %d columns (source + %d views), cells %dx%d at %dx\n", out_path.c_str(),
              static_cast<long long>(n_rows), cols, V, cell_h, cell_w, k);
  return 0;
}

}  // namespace siam::app

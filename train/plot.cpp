// SVG training curves. (train/plot.h)
#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/core/error.h"
#include "train/trainer.h"

namespace siam::train {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else
      o += c;
  }
  return o;
}

// One panel: a polyline of (epoch, value) with axes, min/max labels and points.
void panel(std::ostringstream& os, double x0, double y0, double w, double h, const std::vector<double>& xs,
           const std::vector<double>& ys, const std::string& label, const char* color, bool percent) {
  os << "<g>\n<rect x='" << x0 << "' y='" << y0 << "' width='" << w << "' height='" << h
     << "' fill='none' stroke='#999'/>\n";
  os << "<text x='" << x0 + w / 2 << "' y='" << y0 - 8 << "' text-anchor='middle' font-size='14'>" << esc(label)
     << "</text>\n";
  if (xs.empty()) {
    os << "<text x='" << x0 + w / 2 << "' y='" << y0 + h / 2 << "' text-anchor='middle' font-size='12' "
       << "fill='#999'>not evaluated</text>\n</g>\n";
    return;
  }
  double xmin = *std::min_element(xs.begin(), xs.end()), xmax = *std::max_element(xs.begin(), xs.end());
  double ymin = *std::min_element(ys.begin(), ys.end()), ymax = *std::max_element(ys.begin(), ys.end());
  if (xmax == xmin) xmax = xmin + 1;
  double pad = (ymax - ymin) * 0.1;
  if (pad == 0) pad = std::max(std::abs(ymax) * 0.05, 1e-3);
  ymin -= pad;
  ymax += pad;
  auto px = [&](double x) { return x0 + 10 + (w - 20) * (x - xmin) / (xmax - xmin); };
  auto py = [&](double y) { return y0 + h - (h * (y - ymin) / (ymax - ymin)); };
  char buf[64];
  auto val = [&](double v) {
    if (percent)
      std::snprintf(buf, sizeof(buf), "%.1f%%", v * 100);
    else
      std::snprintf(buf, sizeof(buf), "%.4g", v);
    return std::string(buf);
  };
  for (int i = 0; i <= 4; ++i) {  // horizontal grid with values
    double y = ymin + (ymax - ymin) * i / 4.0;
    os << "<line x1='" << x0 << "' x2='" << x0 + w << "' y1='" << py(y) << "' y2='" << py(y)
       << "' stroke='#eee'/>\n<text x='" << x0 - 4 << "' y='" << py(y) + 4 << "' text-anchor='end' font-size='10'>"
       << val(y) << "</text>\n";
  }
  os << "<polyline fill='none' stroke='" << color << "' stroke-width='2' points='";
  for (size_t i = 0; i < xs.size(); ++i) os << px(xs[i]) << "," << py(ys[i]) << " ";
  os << "'/>\n";
  for (size_t i = 0; i < xs.size(); ++i) {
    os << "<circle cx='" << px(xs[i]) << "' cy='" << py(ys[i]) << "' r='3' fill='" << color << "'><title>epoch "
       << xs[i] << ": " << val(ys[i]) << "</title></circle>\n";
    os << "<text x='" << px(xs[i]) << "' y='" << y0 + h + 14 << "' text-anchor='middle' font-size='10'>" << xs[i]
       << "</text>\n";
  }
  os << "<text x='" << x0 + w / 2 << "' y='" << y0 + h + 30 << "' text-anchor='middle' font-size='11'>epoch</text>\n";
  os << "</g>\n";
}

}  // namespace

void write_curve_svg(const std::string& path, const std::vector<EpochMetrics>& history, const std::string& title) {
  std::vector<double> e, loss, ke, knn;
  for (auto& m : history) {
    e.push_back(m.epoch);
    loss.push_back(m.loss);
    if (m.knn_top1 >= 0) {
      ke.push_back(m.epoch);
      knn.push_back(m.knn_top1);
    }
  }
  std::ostringstream os;
  os << "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='380' font-family='sans-serif'>\n"
     << "<rect width='100%' height='100%' fill='white'/>\n"
     << "<text x='450' y='24' text-anchor='middle' font-size='16'>" << esc(title) << "</text>\n";
  panel(os, 70, 60, 340, 260, e, loss, "training loss", "#1f77b4", false);
  panel(os, 520, 60, 340, 260, ke, knn, "kNN top-1 (k=200, t=0.1)", "#d62728", true);
  os << "</svg>\n";
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    SIAM_CHECK(f.good(), "cannot write ", tmp);
    f << os.str();
  }
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace siam::train

// The training curve of a run as an SVG file: loss per epoch (left axis) and kNN top-1 per epoch (right
// panel), written by hand (no plotting dependency), readable in any browser.
#pragma once
#include <string>
#include <vector>

namespace siam::train {

struct EpochMetrics;

void write_curve_svg(const std::string& path, const std::vector<EpochMetrics>& history, const std::string& title);

}  // namespace siam::train

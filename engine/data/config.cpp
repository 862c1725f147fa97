// YAML -> DataConfig and ViewSpecs (yaml-cpp), and the dataset factory.
#include "engine/data/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace siam::data {

namespace {

struct Ctx {
  std::string source;
  std::string where(const YAML::Node& n, const std::string& key) const {
    std::ostringstream os;
    os << "config " << source;
    if (n.Mark().line >= 0) os << ":" << n.Mark().line + 1;
    os << ": " << key;
    return os.str();
  }
};

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  std::ostringstream os;
  os << YAML::Dump(n);
  return os.str();
}

void check_keys(const Ctx& cx, const YAML::Node& map, const std::string& key, const std::set<std::string>& known) {
  SIAM_CHECK(map.IsMap(), cx.where(map, key), ": expected a mapping, got '", scalar_text(map), "'");
  for (const auto& kv : map) {
    const std::string k = kv.first.as<std::string>();
    if (!known.count(k)) {
      std::string list;
      for (const auto& s : known) list += (list.empty() ? "" : ", ") + s;
      SIAM_FAIL(cx.where(kv.first, key + "." + k), ": unknown key (known: ", list, ")");
    }
  }
}

template <class T> T get(const Ctx& cx, const YAML::Node& n, const std::string& key, const char* what) {
  SIAM_CHECK(n.IsScalar(), cx.where(n, key), ": expected ", what, ", got '", scalar_text(n), "'");
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    SIAM_FAIL(cx.where(n, key), ": expected ", what, ", got '", n.Scalar(), "'");
  }
}
double num(const Ctx& cx, const YAML::Node& n, const std::string& key) { return get<double>(cx, n, key, "a number"); }
int64_t integer(const Ctx& cx, const YAML::Node& n, const std::string& key) {
  return get<int64_t>(cx, n, key, "an integer");
}
std::string str(const Ctx& cx, const YAML::Node& n, const std::string& key) { return get<std::string>(cx, n, key, "a string"); }
double prob(const Ctx& cx, const YAML::Node& n, const std::string& key) {
  double p = num(cx, n, key);
  SIAM_CHECK(p >= 0 && p <= 1, cx.where(n, key), ": a probability in [0, 1], got ", p);
  return p;
}
// [lo, hi] (a single number x means [x, x])
std::pair<double, double> range(const Ctx& cx, const YAML::Node& n, const std::string& key) {
  if (n.IsScalar()) {
    double v = num(cx, n, key);
    return {v, v};
  }
  SIAM_CHECK(n.IsSequence() && n.size() == 2, cx.where(n, key), ": expected [min, max], got '", scalar_text(n), "'");
  double lo = num(cx, n[0], key + "[0]"), hi = num(cx, n[1], key + "[1]");
  SIAM_CHECK(lo <= hi, cx.where(n, key), ": min ", lo, " is above max ", hi);
  return {lo, hi};
}
std::vector<float> floats(const Ctx& cx, const YAML::Node& n, const std::string& key) {
  std::vector<float> out;
  if (n.IsScalar()) return {static_cast<float>(num(cx, n, key))};
  SIAM_CHECK(n.IsSequence() && n.size() >= 1, cx.where(n, key), ": expected a list of numbers, got '", scalar_text(n), "'");
  for (size_t i = 0; i < n.size(); ++i) out.push_back(static_cast<float>(num(cx, n[i], key + "[" + std::to_string(i) + "]")));
  return out;
}

int natural_channels(const DataConfig& d) {
  if (d.kind == "fashion-mnist" || d.kind == "mnist" || d.kind == "idx") return 1;
  return 3;
}

DataConfig parse_data(const Ctx& cx, const YAML::Node& n) {
  DataConfig d;
  check_keys(cx, n, "data",
             {"kind", "root", "split", "channels", "limit", "size", "height", "width", "classes", "seed"});
  if (n["kind"]) {
    d.kind = str(cx, n["kind"], "data.kind");
    static const std::set<std::string> kinds = {"fashion-mnist", "mnist", "idx", "cifar10", "cifar100", "image_folder",
                                                "synthetic"};
    SIAM_CHECK(kinds.count(d.kind), cx.where(n["kind"], "data.kind"), ": unknown dataset kind '", d.kind,
               "' (known: fashion-mnist, mnist, idx, cifar10, cifar100, image_folder, synthetic)");
  }
  if (n["root"]) d.root = str(cx, n["root"], "data.root");
  if (n["split"]) {
    d.split = str(cx, n["split"], "data.split");
    SIAM_CHECK(d.split == "train" || d.split == "test", cx.where(n["split"], "data.split"),
               ": must be train or test, got '", d.split, "'");
  }
  if (n["channels"]) {
    d.channels = static_cast<int>(integer(cx, n["channels"], "data.channels"));
    SIAM_CHECK(d.channels == 0 || d.channels == 1 || d.channels == 3 || d.channels == 4,
               cx.where(n["channels"], "data.channels"), ": must be 1, 3 or 4, got ", d.channels);
  }
  if (n["limit"]) {
    d.limit = integer(cx, n["limit"], "data.limit");
    SIAM_CHECK(d.limit >= 0, cx.where(n["limit"], "data.limit"), ": must be >= 0, got ", d.limit);
  }
  auto positive = [&](const char* key, int64_t& out) {
    if (!n[key]) return;
    out = integer(cx, n[key], std::string("data.") + key);
    SIAM_CHECK(out > 0, cx.where(n[key], std::string("data.") + key), ": must be > 0, got ", out);
  };
  int64_t h = d.height, w = d.width;
  positive("size", d.size);
  positive("height", h);
  positive("width", w);
  positive("classes", d.classes);
  d.height = static_cast<int>(h), d.width = static_cast<int>(w);
  if (n["seed"]) d.seed = static_cast<uint64_t>(integer(cx, n["seed"], "data.seed"));
  if (d.channels == 0) d.channels = natural_channels(d);
  return d;
}

ViewSpec parse_view(const Ctx& cx, const YAML::Node& n, const std::string& at, int channels) {
  ViewSpec v;
  check_keys(cx, n, at,
             {"name", "count", "size", "crop", "flip", "pad_crop", "randaugment", "color_jitter", "grayscale", "blur",
              "solarize", "normalize"});
  v.name = at;
  if (n["name"]) v.name = str(cx, n["name"], at + ".name");
  if (n["count"]) v.count = static_cast<int>(integer(cx, n["count"], at + ".count"));
  SIAM_CHECK(n["size"], cx.where(n, at), ": missing key 'size' (the view's side, or [height, width])");
  {
    const YAML::Node s = n["size"];
    if (s.IsSequence()) {
      SIAM_CHECK(s.size() == 2, cx.where(s, at + ".size"), ": expected a side or [height, width]");
      v.height = static_cast<int>(integer(cx, s[0], at + ".size[0]"));
      v.width = static_cast<int>(integer(cx, s[1], at + ".size[1]"));
    } else {
      v.height = v.width = static_cast<int>(integer(cx, s, at + ".size"));
    }
  }
  if (n["crop"]) {
    const YAML::Node c = n["crop"];
    if (c.IsScalar()) {
      v.crop.enabled = get<bool>(cx, c, at + ".crop", "a mapping or true/false");
    } else {
      check_keys(cx, c, at + ".crop", {"scale", "ratio"});
      if (c["scale"]) std::tie(v.crop.scale_min, v.crop.scale_max) = range(cx, c["scale"], at + ".crop.scale");
      if (c["ratio"]) std::tie(v.crop.ratio_min, v.crop.ratio_max) = range(cx, c["ratio"], at + ".crop.ratio");
    }
  }
  if (n["flip"]) v.flip_p = prob(cx, n["flip"], at + ".flip");
  if (n["pad_crop"]) {
    const YAML::Node c = n["pad_crop"];
    const std::string k = at + ".pad_crop";
    if (c.IsScalar()) {
      v.pad_crop.padding = static_cast<int>(integer(cx, c, k));
    } else {
      check_keys(cx, c, k, {"padding", "mode"});
      SIAM_CHECK(c["padding"], cx.where(c, k), ": missing key 'padding' (pixels on each side)");
      v.pad_crop.padding = static_cast<int>(integer(cx, c["padding"], k + ".padding"));
      if (c["mode"]) {
        const std::string mode = str(cx, c["mode"], k + ".mode");
        SIAM_CHECK(mode == "reflect" || mode == "zeros", cx.where(c["mode"], k + ".mode"),
                   ": must be reflect or zeros, got '", mode, "'");
        v.pad_crop.reflect = mode == "reflect";
      }
    }
  }
  if (n["randaugment"]) {
    const YAML::Node r = n["randaugment"];
    const std::string k = at + ".randaugment";
    check_keys(cx, r, k, {"num_ops", "magnitude", "num_magnitude_bins"});
    v.randaugment.num_ops = 2;  // torchvision's defaults
    if (r["num_ops"]) v.randaugment.num_ops = static_cast<int>(integer(cx, r["num_ops"], k + ".num_ops"));
    if (r["magnitude"]) v.randaugment.magnitude = static_cast<int>(integer(cx, r["magnitude"], k + ".magnitude"));
    if (r["num_magnitude_bins"])
      v.randaugment.num_magnitude_bins = static_cast<int>(integer(cx, r["num_magnitude_bins"], k + ".num_magnitude_bins"));
  }
  if (n["color_jitter"]) {
    const YAML::Node j = n["color_jitter"];
    const std::string k = at + ".color_jitter";
    check_keys(cx, j, k, {"p", "brightness", "contrast", "saturation", "hue"});
    v.jitter.p = j["p"] ? prob(cx, j["p"], k + ".p") : 1.0;
    if (j["brightness"]) v.jitter.brightness = num(cx, j["brightness"], k + ".brightness");
    if (j["contrast"]) v.jitter.contrast = num(cx, j["contrast"], k + ".contrast");
    if (j["saturation"]) v.jitter.saturation = num(cx, j["saturation"], k + ".saturation");
    if (j["hue"]) v.jitter.hue = num(cx, j["hue"], k + ".hue");
  }
  if (n["grayscale"]) v.grayscale_p = prob(cx, n["grayscale"], at + ".grayscale");
  if (n["blur"]) {
    const YAML::Node b = n["blur"];
    const std::string k = at + ".blur";
    check_keys(cx, b, k, {"p", "sigma", "kernel_frac"});
    v.blur.p = b["p"] ? prob(cx, b["p"], k + ".p") : 1.0;
    if (b["sigma"]) std::tie(v.blur.sigma_min, v.blur.sigma_max) = range(cx, b["sigma"], k + ".sigma");
    if (b["kernel_frac"]) v.blur.kernel_frac = num(cx, b["kernel_frac"], k + ".kernel_frac");
  }
  if (n["solarize"]) {
    const YAML::Node s = n["solarize"];
    const std::string k = at + ".solarize";
    check_keys(cx, s, k, {"p", "threshold"});
    v.solarize.p = s["p"] ? prob(cx, s["p"], k + ".p") : 1.0;
    if (s["threshold"]) v.solarize.threshold = num(cx, s["threshold"], k + ".threshold");
  }
  if (n["normalize"]) {
    const YAML::Node s = n["normalize"];
    const std::string k = at + ".normalize";
    check_keys(cx, s, k, {"mean", "std"});
    SIAM_CHECK(s["mean"] && s["std"], cx.where(s, k), ": needs both mean and std");
    v.mean = floats(cx, s["mean"], k + ".mean");
    v.std = floats(cx, s["std"], k + ".std");
  }
  try {
    validate(v, channels, at);
  } catch (const Error& e) {
    SIAM_FAIL(cx.where(n, ""), e.what());
  }
  return v;
}

}  // namespace

ViewsConfig parse_views_config(const std::string& text, const std::string& source) {
  Ctx cx{source};
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    SIAM_FAIL("config ", source, ": not valid YAML: ", e.what());
  }
  SIAM_CHECK(root.IsMap(), "config ", source, ": expected a mapping at the top level");
  ViewsConfig out;
  if (root["data"]) out.data = parse_data(cx, root["data"]);
  else out.data.channels = natural_channels(out.data);
  SIAM_CHECK(root["views"], "config ", source, ": no views: section");
  const YAML::Node vs = root["views"];
  SIAM_CHECK(vs.IsSequence() && vs.size() > 0, cx.where(vs, "views"), ": expected a non-empty list of view pipelines");
  for (size_t i = 0; i < vs.size(); ++i)
    out.views.push_back(parse_view(cx, vs[i], "views[" + std::to_string(i) + "]", out.data.channels));
  return out;
}

ViewsConfig load_views_config(const std::string& path) {
  SIAM_CHECK(std::filesystem::exists(path), "config file '", path, "' does not exist");
  std::ifstream f(path);
  SIAM_CHECK(f.good(), "cannot read config file '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_views_config(ss.str(), path);
}

std::shared_ptr<Dataset> make_dataset(const DataConfig& cfg) {
  const int ch = cfg.channels > 0 ? cfg.channels : natural_channels(cfg);
  if (cfg.kind == "fashion-mnist" || cfg.kind == "mnist" || cfg.kind == "idx") {
    IdxOptions o;
    o.root = cfg.root.empty() ? (cfg.kind == "fashion-mnist" ? std::string(kFashionMnistRoot) : std::string()) : cfg.root;
    SIAM_CHECK(!o.root.empty(), "data.root: required for dataset kind '", cfg.kind, "'");
    o.split = cfg.split;
    o.channels = ch;
    o.limit = cfg.limit;
    return std::make_shared<IdxDataset>(o);
  }
  if (cfg.kind == "cifar10" || cfg.kind == "cifar100") {
    SIAM_CHECK(!cfg.root.empty(), "data.root: required for dataset kind '", cfg.kind, "'");
    CifarOptions o;
    o.root = cfg.root;
    o.variant = cfg.kind == "cifar10" ? 10 : 100;
    o.split = cfg.split;
    o.channels = ch;
    o.limit = cfg.limit;
    return std::make_shared<CifarDataset>(o);
  }
  if (cfg.kind == "image_folder") {
    SIAM_CHECK(!cfg.root.empty(), "data.root: required for dataset kind 'image_folder'");
    ImageFolderOptions o;
    o.root = cfg.root;
    o.channels = ch;
    o.limit = cfg.limit;
    return std::make_shared<ImageFolderDataset>(o);
  }
  if (cfg.kind == "synthetic") {
    SyntheticOptions o;
    o.n = cfg.limit > 0 ? std::min(cfg.limit, cfg.size) : cfg.size;
    o.h = cfg.height;
    o.w = cfg.width;
    o.c = ch;
    o.classes = cfg.classes;
    o.seed = cfg.seed;
    return std::make_shared<SyntheticDataset>(o);
  }
  SIAM_FAIL("data.kind: unknown dataset kind '", cfg.kind, "'");
}

}  // namespace siam::data

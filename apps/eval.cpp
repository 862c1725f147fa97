// siam eval knn|linear and siam embed: frozen-feature evaluation of a trained encoder
// (<run>/encoder.safetensors, whose metadata names the architecture and the normalization it was trained
// with; a torchvision-named file without metadata takes --arch/--width/--stem/--in-ch).
#include "train/eval.h"

#include <omp.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/commands.h"
#include "apps/options.h"
#include "engine/data/config.h"
#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "models/resnet.h"

namespace siam::app {

namespace {

namespace fs = std::filesystem;

const char* kEvalUsage =
    "usage: siam eval knn|linear --checkpoint FILE|RUN_DIR [options]\n"
    "       siam embed --checkpoint FILE|RUN_DIR --out FILE.npy|FILE.safetensors [--split train|test] [options]\n"
    "  --checkpoint    an encoder.safetensors (or the run folder holding it)\n"
    "  --kind KIND     fashion-mnist (default) | mnist | cifar10 | cifar100 | image_folder | synthetic\n"
    "  --data ROOT     the dataset folder (default: Fashion-MNIST's Debian package)\n"
    "  --test-data ROOT  image_folder only: the folder of test images\n"
    "  --limit N / --test-limit N   use only the first N train / test images\n"
    "  --threads T     compute threads (default: all cores); --batch-size B (512)\n"
    "  knn:    --k 200 --t 0.1\n"
    "  linear: --epochs 100 --lr 0.1 --weight-decay 0 --seed 0\n"
    "  without metadata in the checkpoint: --arch resnet18 --width 64 --stem cifar --in-ch 1 --size 28\n"
    "                                      --mean 0.2860 --std 0.3530\n";

const std::vector<std::string> kKnown = {"checkpoint",   "kind",       "data", "test-data", "limit",  "test-limit",
                                         "threads",      "batch-size", "k",    "t",         "epochs", "lr",
                                         "weight-decay", "seed",       "arch", "width",     "stem",   "in-ch",
                                         "size",         "mean",       "std",  "out",       "split"};

std::vector<float> floats(const std::string& s) {
  std::vector<float> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stof(item));
  return out;
}

struct LoadedEncoder {
  std::shared_ptr<models::ResNet> net;
  data::ViewSpec view;
  std::string path;
};

LoadedEncoder load_encoder(const Options& a) {
  std::string path = a.required("checkpoint", "(an encoder.safetensors or a run folder)");
  if (fs::is_directory(path)) path = (fs::path(path) / "encoder.safetensors").string();
  SIAM_CHECK(fs::exists(path), "--checkpoint: ", path, " does not exist");
  io::SafetensorsContents st = io::load_safetensors(path);
  auto meta = [&](const char* k, const std::string& def) {
    auto it = st.metadata.find(k);
    return it == st.metadata.end() ? def : it->second;
  };
  SIAM_CHECK(meta("format", "") != "siam-train-1", "--checkpoint ", path,
             " is a training checkpoint; pass the run folder or its encoder.safetensors");
  models::ResNetConfig rc;
  rc.depth = models::resnet_depth_from_name(a.str("arch", meta("arch", "resnet18")));
  rc.stem = models::stem_from_name(a.str("stem", meta("stem", "cifar")));
  rc.width = std::stoll(a.str("width", meta("width", "64")));
  rc.in_channels = std::stoll(a.str("in-ch", meta("in_channels", "1")));
  rc.num_classes = 0;
  LoadedEncoder le;
  le.path = path;
  le.net = std::make_shared<models::ResNet>(rc);
  io::load_state_dict(*le.net, st.tensors, {.ignore_prefixes = {"fc."}}, path);
  int size = static_cast<int>(std::stoll(a.str("size", meta("eval_height", "28"))));
  le.view.name = "eval";
  le.view.height = size;
  le.view.width = a.has("size") ? size : static_cast<int>(std::stoll(meta("eval_width", std::to_string(size))));
  le.view.crop.enabled = false;
  le.view.flip_p = 0;
  le.view.mean = floats(a.str("mean", meta("mean", "")));
  le.view.std = floats(a.str("std", meta("std", "")));
  return le;
}

std::shared_ptr<data::Dataset> dataset(const Options& a, const std::string& split, int channels) {
  data::DataConfig d;
  d.kind = a.str("kind", "fashion-mnist");
  d.root = a.str("data", "");
  d.channels = channels;
  d.split = split;
  d.limit = a.integer(split == "test" ? "test-limit" : "limit", 0);
  if (d.kind == "image_folder" && split == "test") {
    d.root = a.required("test-data", "(the folder of test images, for an image_folder dataset)");
  }
  if (d.kind == "synthetic" && split == "test") d.seed = 1;
  return data::make_dataset(d);
}

void write_npy(const std::string& path, const Tensor& t) {
  Tensor c = t.contiguous();
  const char* descr = c.dtype() == DType::f32 ? "<f4" : c.dtype() == DType::i64 ? "<i8" : nullptr;
  SIAM_CHECK(descr != nullptr, "write_npy: only f32 and i64, got ", dtype_name(c.dtype()));
  std::string shape = "(";
  for (int64_t d = 0; d < c.dim(); ++d)
    shape += std::to_string(c.size(d)) + (c.dim() == 1 ? "," : d + 1 < c.dim() ? ", " : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  SIAM_CHECK(f.good(), "cannot write ", path);
  f.write("\x93NUMPY\x01\x00", 8);
  uint16_t hl = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char*>(&hl), 2);
  f << header;
  f.write(static_cast<const char*>(c.raw_data()), static_cast<std::streamsize>(c.nbytes()));
  SIAM_CHECK(f.good(), "cannot write ", path);
}

void set_threads(const Options& a) {
  int t = static_cast<int>(a.integer("threads", 0));
  if (t > 0) omp_set_num_threads(t);
}

}  // namespace

int eval(int argc, char** argv) {
  SIAM_CHECK(argc >= 3, "which evaluation? knn or linear\n", kEvalUsage);
  std::string what = argv[2];
  if (what == "--help" || what == "-h") {
    std::fputs(kEvalUsage, stdout);
    return 0;
  }
  SIAM_CHECK(what == "knn" || what == "linear", "unknown evaluation '", what, "' (knn or linear)\n", kEvalUsage);
  Options a(argc, argv, 3, kKnown, kEvalUsage);
  if (a.help()) {
    std::fputs(kEvalUsage, stdout);
    return 0;
  }
  set_threads(a);
  LoadedEncoder le = load_encoder(a);
  const int ch = static_cast<int>(le.net->config().in_channels);
  auto tr = dataset(a, "train", ch), te = dataset(a, "test", ch);
  const int64_t bs = a.integer("batch-size", 512);
  std::printf("siam eval %s: %s on %s / %s\n", what.c_str(), le.path.c_str(), tr->describe().c_str(),
              te->describe().c_str());
  std::fflush(stdout);
  train::Features ftr = train::extract_features(*le.net, tr, le.view, bs, 1);
  train::Features fte = train::extract_features(*le.net, te, le.view, bs, 1);
  if (what == "knn") {
    train::KnnOptions ko{.k = static_cast<int>(a.integer("k", 200)), .t = a.number("t", 0.1)};
    double top1 = train::knn_top1(ftr, fte, tr->num_classes(), ko);
    std::printf("{\"eval\": \"knn\", \"k\": %d, \"t\": %g, \"top1\": %.4f}\n", ko.k, ko.t, top1);
    return 0;
  }
  train::LinearProbeOptions lo{.epochs = static_cast<int>(a.integer("epochs", 100)),
                               .lr = a.number("lr", 0.1),
                               .weight_decay = a.number("weight-decay", 0),
                               .seed = static_cast<uint64_t>(a.integer("seed", 0)),
                               .verbose = true};
  auto r = train::linear_probe(ftr, fte, tr->num_classes(), lo);
  std::printf("{\"eval\": \"linear\", \"epochs\": %d, \"train_top1\": %.4f, \"top1\": %.4f}\n", lo.epochs, r.train_top1,
              r.test_top1);
  return 0;
}

int embed(int argc, char** argv) {
  Options a(argc, argv, 2, kKnown, kEvalUsage);
  if (a.help()) {
    std::fputs(kEvalUsage, stdout);
    return 0;
  }
  set_threads(a);
  const std::string out = a.required("out", "(FILE.npy or FILE.safetensors)");
  LoadedEncoder le = load_encoder(a);
  const std::string split = a.str("split", "train");
  SIAM_CHECK(split == "train" || split == "test", "--split must be train or test, got '", split, "'");
  auto ds = dataset(a, split, static_cast<int>(le.net->config().in_channels));
  train::Features f = train::extract_features(*le.net, ds, le.view, a.integer("batch-size", 512), 1);
  fs::path p(out);
  if (p.extension() == ".safetensors") {
    io::save_safetensors(out, {{"embeddings", f.x}, {"labels", f.labels}},
                         {{"encoder", le.path}, {"dataset", ds->describe()}});
  } else {
    SIAM_CHECK(p.extension() == ".npy", "--out must end in .npy or .safetensors, got '", out, "'");
    write_npy(out, f.x);
    fs::path lp = p;
    lp.replace_extension(".labels.npy");
    write_npy(lp.string(), f.labels);
  }
  std::printf("{\"embed\": %s, \"rows\": %lld, \"dim\": %lld}\n", ("\"" + out + "\"").c_str(),
              static_cast<long long>(f.x.size(0)), static_cast<long long>(f.x.size(1)));
  return 0;
}

}  // namespace siam::app

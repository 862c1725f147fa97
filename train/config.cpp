// YAML -> TrainConfig, with --set overrides and key validation. (train/config.h)
#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "engine/core/error.h"

namespace siam::train {

namespace {

// A mapping under a dotted prefix; reads typed values with defaults and remembers which keys exist, so
// an unknown one can be named.
class Reader {
 public:
  Reader(std::string source, YAML::Node node, std::string prefix)
      : source_(std::move(source)), node_(std::move(node)), prefix_(std::move(prefix)) {
    if (node_.IsDefined() && !node_.IsNull())
      SIAM_CHECK(node_.IsMap(), where(node_, prefix_), ": expected a mapping, got '", YAML::Dump(node_), "'");
  }
  std::string where(const YAML::Node& n, const std::string& key) const {
    std::ostringstream os;
    os << "config " << source_;
    if (n.Mark().line >= 0) os << ":" << n.Mark().line + 1;
    os << ": " << key;
    return os.str();
  }
  bool has(const std::string& k) const { return node_.IsMap() && node_[k].IsDefined() && !node_[k].IsNull(); }
  YAML::Node at(const std::string& k) const { return node_.IsMap() ? node_[k] : YAML::Node(); }
  std::string key(const std::string& k) const { return prefix_.empty() ? k : prefix_ + "." + k; }

  template <class T> T get(const std::string& k, T def, const char* what) const {
    if (!has(k)) return def;
    YAML::Node n = node_[k];
    SIAM_CHECK(n.IsScalar(), where(n, key(k)), ": expected ", what, ", got '", YAML::Dump(n), "'");
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      SIAM_FAIL(where(n, key(k)), ": expected ", what, ", got '", n.Scalar(), "'");
    }
  }
  double num(const std::string& k, double def) const { return get<double>(k, def, "a number"); }
  int64_t integer(const std::string& k, int64_t def) const { return get<int64_t>(k, def, "an integer"); }
  bool flag(const std::string& k, bool def) const { return get<bool>(k, def, "true or false"); }
  std::string str(const std::string& k, const std::string& def) const { return get<std::string>(k, def, "a string"); }
  double positive(const std::string& k, double def) const {
    double v = num(k, def);
    SIAM_CHECK(v > 0, where(at(k), key(k)), ": must be > 0, got ", v);
    return v;
  }
  double non_negative(const std::string& k, double def) const {
    double v = num(k, def);
    SIAM_CHECK(v >= 0, where(at(k), key(k)), ": must be >= 0, got ", v);
    return v;
  }
  std::string choice(const std::string& k, const std::string& def, const std::vector<std::string>& allowed) const {
    std::string v = str(k, def);
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      SIAM_FAIL(where(at(k), key(k)), ": '", v, "' is not one of ", list);
    }
    return v;
  }
  // Every key (dotted through nested mappings when `nested`) must be in `known`.
  void check_known(const std::set<std::string>& known, bool nested = false) const {
    if (!node_.IsMap()) return;
    check_map(node_, "", known, nested);
  }

 private:
  void check_map(const YAML::Node& map, const std::string& pre, const std::set<std::string>& known, bool nested) const {
    for (const auto& kv : map) {
      const std::string k = pre + kv.first.as<std::string>();
      if (nested && kv.second.IsMap()) {
        bool any =
            std::any_of(known.begin(), known.end(), [&](const std::string& s) { return s.rfind(k + ".", 0) == 0; });
        if (any) {
          check_map(kv.second, k + ".", known, nested);
          continue;
        }
      }
      if (!known.count(k)) {
        std::string list;
        for (const auto& s : known) list += (list.empty() ? "" : ", ") + s;
        SIAM_FAIL(where(kv.first, key(k)), ": unknown key (known: ", list, ")");
      }
    }
  }
  std::string source_;
  YAML::Node node_;
  std::string prefix_;
};

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

bool is_index(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Sets root[a][b][c] = value for "a.b.c", creating mappings on the way; a numeric part indexes a sequence.
void set_path(YAML::Node node, const std::vector<std::string>& parts, size_t i, const YAML::Node& value,
              const std::string& full) {
  const std::string& p = parts[i];
  SIAM_CHECK(!p.empty(), "--set ", full, ": empty key part");
  if (node.IsSequence()) {
    SIAM_CHECK(is_index(p), "--set ", full, ": '", p, "' indexes a list and must be a number");
    size_t idx = std::stoul(p);
    SIAM_CHECK(idx < node.size(), "--set ", full, ": index ", idx, " is past the end of a list of ", node.size());
    if (i + 1 == parts.size()) {
      node[idx] = value;
      return;
    }
    set_path(node[idx], parts, i + 1, value, full);
    return;
  }
  SIAM_CHECK(!node.IsScalar(), "--set ", full, ": '", parts[i - 1], "' is a value, not a section");
  if (i + 1 == parts.size()) {
    node[p] = value;
    return;
  }
  YAML::Node child = node[p];
  if (!child.IsDefined() || child.IsNull()) {
    node[p] = YAML::Node(YAML::NodeType::Map);
    child = node[p];
  }
  set_path(child, parts, i + 1, value, full);
}

void apply_override(YAML::Node& root, const std::string& kv) {
  auto eq = kv.find('=');
  SIAM_CHECK(eq != std::string::npos && eq > 0, "--set expects key=value, got '", kv, "'");
  const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    SIAM_FAIL("--set ", key, ": cannot parse '", text, "' (", e.what(), ")");
  }
  set_path(root, split_dots(key), 0, value, key);
}

methods::HeadOptions read_head(const Reader& m, const std::string& which, methods::HeadOptions h) {
  if (!m.has(which)) return h;
  Reader r(m.where(m.at(which), ""), m.at(which), m.key(which));
  h.hidden = r.integer("hidden", h.hidden);
  h.out = r.integer("out", h.out);
  h.layers = static_cast<int>(r.integer("layers", h.layers));
  h.hidden_bn = r.flag("hidden_bn", h.hidden_bn);
  h.last_bn = r.flag("last_bn", h.last_bn);
  h.last_bn_affine = r.flag("last_bn_affine", h.last_bn_affine);
  h.bias = r.flag("bias", h.bias);
  return h;
}

methods::MethodOptions read_method(const Reader& m) {
  SIAM_CHECK(m.has("name"), m.where(m.at("name"), "method.name"),
             ": missing (one of simclr, moco, byol, simsiam, "
             "barlow_twins, wmse, swav, vicreg)");
  const std::string name = m.str("name", "");
  methods::MethodOptions o;
  try {
    o = methods::defaults_for(name);
  } catch (const Error& e) {
    SIAM_FAIL(m.where(m.at("name"), "method.name"), ": ", e.what());
  }
  auto keys = methods::keys_for(name);
  m.check_known(std::set<std::string>(keys.begin(), keys.end()), /*nested=*/true);
  o.projector = read_head(m, "projector", o.projector);
  o.predictor = read_head(m, "predictor", o.predictor);
  o.temperature = m.positive("temperature", o.temperature);
  o.momentum = m.num("momentum", o.momentum);
  SIAM_CHECK(o.momentum >= 0 && o.momentum <= 1, m.where(m.at("momentum"), "method.momentum"),
             ": must be in [0, 1], got ", o.momentum);
  o.cosine_momentum = m.flag("cosine_momentum", o.cosine_momentum);
  o.queue_size = m.integer("queue_size", o.queue_size);
  o.shuffle_bn_groups = static_cast<int>(m.integer("shuffle_bn_groups", o.shuffle_bn_groups));
  o.symmetric = m.flag("symmetric", o.symmetric);
  o.per_view_forward = m.flag("per_view_forward", o.per_view_forward);
  o.lambda = m.non_negative("lambda", o.lambda);
  o.sim_weight = m.non_negative("sim_weight", o.sim_weight);
  o.var_weight = m.non_negative("var_weight", o.var_weight);
  o.cov_weight = m.non_negative("cov_weight", o.cov_weight);
  o.whiten_size = m.integer("whiten_size", o.whiten_size);
  o.whiten_iters = static_cast<int>(m.integer("whiten_iters", o.whiten_iters));
  o.whiten_eps = m.non_negative("whiten_eps", o.whiten_eps);
  o.prototypes = m.integer("prototypes", o.prototypes);
  o.sinkhorn_eps = m.positive("sinkhorn_eps", o.sinkhorn_eps);
  o.sinkhorn_iters = static_cast<int>(m.integer("sinkhorn_iters", o.sinkhorn_iters));
  o.freeze_prototypes_steps = m.integer("freeze_prototypes_steps", o.freeze_prototypes_steps);
  o.swav_queue = m.integer("swav_queue", o.swav_queue);
  o.swav_queue_start_step = m.integer("swav_queue_start_step", o.swav_queue_start_step);
  o.batch_stats = m.choice("batch_stats", o.batch_stats, {"gather", "all_reduce"});
  return o;
}

}  // namespace

TrainConfig parse_train_config(const std::string& yaml_text, const std::string& source, const Overrides& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    SIAM_FAIL("config ", source, ": not valid YAML: ", e.what());
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  SIAM_CHECK(root.IsMap(), "config ", source, ": expected a mapping of sections at the top level");
  for (const auto& kv : overrides) apply_override(root, kv);

  TrainConfig c;
  c.source = source;
  Reader top(source, root, "");
  top.check_known({"data", "views", "model", "method", "optimizer", "schedule", "train", "eval", "out_dir"});
  SIAM_CHECK(top.has("method"), "config ", source, ": no method: section (method: {name: simclr, ...})");

  {  // data: and views: (their own reader checks their keys and values)
    YAML::Node dv(YAML::NodeType::Map);
    if (root["data"]) dv["data"] = root["data"];
    if (root["views"]) dv["views"] = root["views"];
    c.data = data::parse_views_config(YAML::Dump(dv), source);
  }
  {
    Reader m(source, root["model"], "model");
    m.check_known({"arch", "stem", "width", "zero_init_residual"});
    c.model.arch = m.choice("arch", c.model.arch, {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"});
    c.model.stem = m.choice("stem", c.model.stem, {"cifar", "imagenet"});
    c.model.width = m.integer("width", c.model.width);
    SIAM_CHECK(c.model.width > 0, m.where(m.at("width"), "model.width"), ": must be > 0, got ", c.model.width);
    c.model.zero_init_residual = m.flag("zero_init_residual", c.model.zero_init_residual);
  }
  c.method = read_method(Reader(source, root["method"], "method"));
  {
    Reader o(source, root["optimizer"], "optimizer");
    o.check_known(
        {"name", "lr", "momentum", "weight_decay", "nesterov", "eta", "betas", "exclude_bias_bn", "lr_scaling"});
    auto& x = c.optimizer;
    x.name = o.choice("name", x.name, {"sgd", "lars", "adamw"});
    if (x.name == "adamw") {
      x.lr = 1e-3;
      x.weight_decay = 0.05;
    }
    x.lr = o.positive("lr", x.lr);
    x.momentum = o.non_negative("momentum", x.momentum);
    x.weight_decay = o.non_negative("weight_decay", x.weight_decay);
    x.nesterov = o.flag("nesterov", x.nesterov);
    x.eta = o.positive("eta", x.eta);
    if (o.has("betas")) {
      YAML::Node b = o.at("betas");
      SIAM_CHECK(b.IsSequence() && b.size() == 2, o.where(b, "optimizer.betas"), ": expected [beta1, beta2]");
      x.beta1 = b[0].as<double>();
      x.beta2 = b[1].as<double>();
      SIAM_CHECK(x.beta1 >= 0 && x.beta1 < 1 && x.beta2 >= 0 && x.beta2 < 1, o.where(b, "optimizer.betas"),
                 ": each must be in [0, 1)");
    }
    x.exclude_bias_bn = o.flag("exclude_bias_bn", x.exclude_bias_bn);
    x.lr_scaling = o.choice("lr_scaling", x.lr_scaling, {"none", "linear"});
  }
  {
    Reader s(source, root["schedule"], "schedule");
    s.check_known({"name", "warmup_epochs", "final_lr", "warmup_start_lr"});
    c.schedule.name = s.choice("name", c.schedule.name, {"cosine", "constant"});
    c.schedule.warmup_epochs = s.non_negative("warmup_epochs", c.schedule.warmup_epochs);
    c.schedule.final_lr = s.non_negative("final_lr", c.schedule.final_lr);
    c.schedule.warmup_start_lr = s.non_negative("warmup_start_lr", c.schedule.warmup_start_lr);
  }
  {
    Reader t(source, root["train"], "train");
    t.check_known({"epochs", "batch_size", "seed", "threads", "loader_threads", "log_every_s", "checkpoint_every",
                   "sync_bn", "device", "precision", "accumulate", "ddp_bucket_mb"});
    auto& x = c.train;
    x.epochs = static_cast<int>(t.integer("epochs", x.epochs));
    SIAM_CHECK(x.epochs >= 1, t.where(t.at("epochs"), "train.epochs"), ": must be >= 1, got ", x.epochs);
    x.batch_size = t.integer("batch_size", x.batch_size);
    SIAM_CHECK(x.batch_size >= 2, t.where(t.at("batch_size"), "train.batch_size"), ": must be >= 2, got ",
               x.batch_size);
    int64_t seed = t.integer("seed", 0);
    SIAM_CHECK(seed >= 0, t.where(t.at("seed"), "train.seed"), ": must be >= 0, got ", seed);
    x.seed = static_cast<uint64_t>(seed);
    x.threads = static_cast<int>(t.integer("threads", x.threads));
    SIAM_CHECK(x.threads >= 0, t.where(t.at("threads"), "train.threads"), ": must be >= 0 (0: all cores)");
    x.loader_threads = static_cast<int>(t.integer("loader_threads", x.loader_threads));
    SIAM_CHECK(x.loader_threads >= 0, t.where(t.at("loader_threads"), "train.loader_threads"), ": must be >= 0");
    x.log_every_s = t.non_negative("log_every_s", x.log_every_s);
    x.checkpoint_every = static_cast<int>(t.integer("checkpoint_every", x.checkpoint_every));
    SIAM_CHECK(x.checkpoint_every >= 1, t.where(t.at("checkpoint_every"), "train.checkpoint_every"), ": must be >= 1");
    x.sync_bn = t.flag("sync_bn", x.sync_bn);
    x.device = t.choice("device", x.device, {"cpu", "cuda"});
    x.precision = t.choice("precision", x.precision, {"f32", "bf16"});
    SIAM_CHECK(x.precision == "f32" || x.device == "cuda", t.where(t.at("precision"), "train.precision"),
               ": bf16 needs train.device: cuda (CPU training runs in f32)");
    x.accumulate = static_cast<int>(t.integer("accumulate", x.accumulate));
    SIAM_CHECK(x.accumulate >= 1, t.where(t.at("accumulate"), "train.accumulate"),
               ": must be >= 1 (micro-batches per optimizer step), got ", x.accumulate);
    // The per-rank batch (batch_size / ranks) must split evenly too; the trainer checks that under mpirun.
    SIAM_CHECK(x.batch_size % x.accumulate == 0 && x.batch_size / x.accumulate >= 2,
               t.where(t.at("accumulate"), "train.accumulate"), ": ", x.accumulate,
               " micro-batches must divide train.batch_size (", x.batch_size, ") into micro-batches of >= 2 samples");
    x.ddp_bucket_mb = t.positive("ddp_bucket_mb", x.ddp_bucket_mb);
  }
  {
    Reader e(source, root["eval"], "eval");
    e.check_known(
        {"knn", "knn_k", "knn_t", "knn_every", "knn_train_limit", "knn_test_limit", "batch_size", "knn_before"});
    auto& x = c.eval;
    x.knn = e.flag("knn", x.knn);
    x.knn_k = static_cast<int>(e.integer("knn_k", x.knn_k));
    SIAM_CHECK(x.knn_k >= 1, e.where(e.at("knn_k"), "eval.knn_k"), ": must be >= 1");
    x.knn_t = e.positive("knn_t", x.knn_t);
    x.knn_every = static_cast<int>(e.integer("knn_every", x.knn_every));
    SIAM_CHECK(x.knn_every >= 1, e.where(e.at("knn_every"), "eval.knn_every"), ": must be >= 1");
    x.knn_train_limit = e.integer("knn_train_limit", 0);
    x.knn_test_limit = e.integer("knn_test_limit", 0);
    SIAM_CHECK(x.knn_train_limit >= 0 && x.knn_test_limit >= 0, e.where(e.at("knn_train_limit"), "eval"),
               ": limits must be >= 0");
    x.batch_size = e.integer("batch_size", x.batch_size);
    x.knn_before = e.flag("knn_before", x.knn_before);
    SIAM_CHECK(x.batch_size >= 1, e.where(e.at("batch_size"), "eval.batch_size"), ": must be >= 1");
  }
  c.out_dir = top.str("out_dir", "runs/" + c.method.name + "_" + c.data.data.kind);
  SIAM_CHECK(!c.out_dir.empty(), "config ", source, ": out_dir is empty");
  c.method.seed = c.train.seed;
  YAML::Emitter em;
  em << root;
  c.resolved_yaml = std::string(em.c_str()) + "\n";
  return c;
}

TrainConfig load_train_config(const std::string& path, const Overrides& overrides) {
  std::ifstream f(path);
  SIAM_CHECK(f.good(), "config ", path, ": cannot open the file");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_train_config(ss.str(), path, overrides);
}

}  // namespace siam::train

#include "engine/io/checkpoint.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

namespace siam::io {

namespace {

bool ignored(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

std::string list(const std::vector<std::string>& v, size_t limit = 20) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < limit; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > limit) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

int64_t parse_int(const Metadata& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  SIAM_CHECK(it != m.end(), path, ": training checkpoint metadata lacks '", key, "'");
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  SIAM_CHECK(errno == 0 && end && *end == '\0' && !it->second.empty(), path, ": metadata '", key, "' = '", it->second,
             "' is not an integer");
  return v;
}

constexpr const char* kFormat = "siam-train-1";

}  // namespace

void load_state_dict(nn::Module& module, const NamedTensors& state, const LoadOptions& options,
                     const std::string& source) {
  std::map<std::string, const Tensor*> given;
  std::vector<std::string> duplicate;
  for (const auto& [n, t] : state)
    if (!ignored(n, options.ignore_prefixes) && !given.emplace(n, &t).second) duplicate.push_back(n);
  SIAM_CHECK(duplicate.empty(), source, ": duplicate entries: ", list(duplicate));

  std::vector<std::string> missing, unexpected, wrong;
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  std::map<std::string, bool> seen;
  for (const auto& [name, dst] : module.state_dict()) {
    if (ignored(name, options.ignore_prefixes)) continue;
    seen[name] = true;
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& src = *it->second;
    if (!src.defined()) {
      wrong.push_back(name + " (undefined tensor)");
      continue;
    }
    if (src.shape() != dst.shape()) {
      wrong.push_back(name + " (shape " + shape_str(src.shape()) + ", model has " + shape_str(dst.shape()) + ")");
      continue;
    }
    if (src.dtype() != dst.dtype() && !(is_floating(src.dtype()) && is_floating(dst.dtype()))) {
      wrong.push_back(name + " (dtype " + dtype_name(src.dtype()) + ", model has " + dtype_name(dst.dtype()) + ")");
      continue;
    }
    copies.emplace_back(dst, &src);
  }
  for (const auto& [n, t] : given)
    if (!seen.count(n)) unexpected.push_back(n);
  std::string msg;
  if (options.strict && !missing.empty()) msg += "\n  missing: " + list(missing);
  if (options.strict && !unexpected.empty()) msg += "\n  unexpected: " + list(unexpected);
  if (!wrong.empty()) msg += "\n  mismatched: " + list(wrong);
  SIAM_CHECK(msg.empty(), source, ": cannot load into ", module.type_name(), ":", msg,
             options.ignore_prefixes.empty() ? "\n  (heads can be skipped with LoadOptions::ignore_prefixes)" : "");
  NoGradGuard ng;
  for (auto& [dst, src] : copies) {
    Tensor d = dst;
    d.copy_(src->detach().to(d.device()));
  }
}

void save_model(const std::string& path, const nn::Module& module, const Metadata& metadata,
                const SaveOptions& options) {
  save_safetensors(path, module.state_dict(), metadata, options);
}

void load_model(const std::string& path, nn::Module& module, const LoadOptions& options) {
  SafetensorsContents c = load_safetensors(path);
  load_state_dict(module, c.tensors, options, path);
}

void save_training_checkpoint(const std::string& path, const TrainingCheckpoint& ckpt) {
  NamedTensors all;
  auto add = [&](const char* prefix, const NamedTensors& part) {
    for (const auto& [n, t] : part) all.emplace_back(std::string(prefix) + n, t);
  };
  add("model.", ckpt.model);
  add("ema.", ckpt.ema);
  add("optim.", ckpt.optimizer);
  add("method.", ckpt.method);
  int64_t rng[2];
  std::memcpy(&rng[0], &ckpt.rng_seed, 8);
  std::memcpy(&rng[1], &ckpt.rng_offset, 8);
  all.emplace_back("rng", from_vector_i64({rng[0], rng[1]}, {2}));
  Metadata meta = ckpt.metadata;
  meta["format"] = kFormat;
  meta["epoch"] = std::to_string(ckpt.epoch);
  meta["step"] = std::to_string(ckpt.step);
  save_safetensors(path, all, meta);
}

TrainingCheckpoint load_training_checkpoint(const std::string& path) {
  SafetensorsContents c = load_safetensors(path);
  auto fmt = c.metadata.find("format");
  SIAM_CHECK(fmt != c.metadata.end() && fmt->second == kFormat, path, ": not a siam training checkpoint (metadata ",
             "format is '", fmt == c.metadata.end() ? "absent" : fmt->second, "', expected '", kFormat, "')");
  TrainingCheckpoint ck;
  ck.epoch = parse_int(c.metadata, "epoch", path);
  ck.step = parse_int(c.metadata, "step", path);
  for (const auto& [k, v] : c.metadata)
    if (k != "format" && k != "epoch" && k != "step") ck.metadata[k] = v;
  bool have_rng = false;
  for (const auto& [n, t] : c.tensors) {
    auto strip = [&](const char* prefix, NamedTensors& into) {
      size_t len = std::strlen(prefix);
      if (n.compare(0, len, prefix) != 0) return false;
      into.emplace_back(n.substr(len), t);
      return true;
    };
    if (strip("model.", ck.model) || strip("ema.", ck.ema) || strip("optim.", ck.optimizer) ||
        strip("method.", ck.method))
      continue;
    if (n == "rng") {
      SIAM_CHECK(t.dtype() == DType::i64 && t.numel() == 2, path, ": 'rng' must be i64 [seed, offset], got ",
                 dtype_name(t.dtype()), " ", shape_str(t.shape()));
      const int64_t* p = t.data<int64_t>();
      std::memcpy(&ck.rng_seed, &p[0], 8);
      std::memcpy(&ck.rng_offset, &p[1], 8);
      have_rng = true;
      continue;
    }
    SIAM_FAIL(path, ": unexpected tensor '", n, "' in a training checkpoint (expected model., ema., optim., ",
              "method. or rng)");
  }
  SIAM_CHECK(have_rng, path, ": training checkpoint lacks the 'rng' tensor");
  return ck;
}

}  // namespace siam::io

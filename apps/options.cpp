#include "apps/options.h"

#include <algorithm>
#include <cstdlib>

#include "engine/core/error.h"

namespace siam::app {

Options::Options(int argc, char** argv, int first, const std::vector<std::string>& known, const char* usage)
    : usage_(usage) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      return;
    }
    SIAM_CHECK(a.rfind("--", 0) == 0, "unexpected argument '", a, "' (options look like --name value)\n",
               usage_);
    std::string key = a.substr(2), val;
    if (auto eq = key.find('='); eq != std::string::npos) {
      val = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      SIAM_CHECK(i + 1 < argc, "option --", key, " needs a value");
      val = argv[++i];
    }
    SIAM_CHECK(std::find(known.begin(), known.end(), key) != known.end(), "unknown option --", key, "\n",
               usage_);
    kv_[key] = val;
    multi_[key].push_back(val);
  }
}

std::vector<std::string> Options::all(const std::string& key) const {
  auto it = multi_.find(key);
  return it == multi_.end() ? std::vector<std::string>{} : it->second;
}

std::string Options::str(const std::string& key, const std::string& def) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? def : it->second;
}

std::string Options::required(const std::string& key, const std::string& what) const {
  SIAM_CHECK(has(key), "--", key, " ", what, " is required\n", usage_);
  return kv_.at(key);
}

int64_t Options::integer(const std::string& key, int64_t def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  SIAM_CHECK(end && *end == '\0' && !it->second.empty() && v >= 0, "--", key, " '", it->second,
             "' is not a non-negative integer");
  return v;
}

double Options::number(const std::string& key, double def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  SIAM_CHECK(end && *end == '\0' && !it->second.empty(), "--", key, " '", it->second, "' is not a number");
  return v;
}

}  // namespace siam::app

// The simulated faults of the GPU check's guards (tests/cuda/main.cpp: SIAM_TEST_SIMULATE; bench/main.cpp:
// SIAM_BENCH_SIMULATE), which test scripts/gpu_check.sh's resume on a machine without a GPU
// (tests/gpu_check_resume_test.sh).
#pragma once
#include <cstdlib>
#include <map>
#include <string>

namespace siam::test {

// The environment variable `var` as "<name>:<kind>[,<name>:<kind>...]" -> {name: kind}; a name without ":<kind>"
// gets `default_kind`. Empty when the variable is unset.
inline std::map<std::string, std::string> simulated_faults(const char* var, const char* default_kind) {
  std::map<std::string, std::string> out;
  const char* env = std::getenv(var);
  if (!env) return out;
  const std::string s(env);
  for (size_t at = 0; at <= s.size();) {
    size_t end = s.find(',', at);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(at, end - at);
    const size_t colon = item.rfind(':');
    if (!item.empty()) out[item.substr(0, colon)] = colon == std::string::npos ? default_kind : item.substr(colon + 1);
    at = end + 1;
  }
  return out;
}

}  // namespace siam::test

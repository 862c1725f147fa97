// Small helpers shared by the unit tests.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "engine/core/error.h"

namespace siam::test {

// The message of the siam::Error that f throws, or a marker string when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no siam::Error thrown>";
}

// A path for a fixture file in a per-process temporary folder of the given test suite.
inline std::string tmp_path(const std::string& suite, const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("siam_" + suite + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace siam::test

// Small helpers shared by the unit tests.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/tensor.h"

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

// max |a - b| <= rtol * max |b| + atol over all elements, every element of a finite.
inline void expect_close(const Tensor& a, const Tensor& b, double rtol, double atol, const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    ASSERT_TRUE(std::isfinite(va[i])) << what << " element " << i;
    diff = std::max(diff, std::abs(va[i] - vb[i]));
    scale = std::max(scale, std::abs(vb[i]));
  }
  EXPECT_LE(diff, rtol * scale + atol) << what << ": max diff " << diff << ", max |ref| " << scale;
}

// Normwise relative error |ours - ref| / |ref| over all elements (|ref| floored at 1e-30); a shape mismatch fails
// the calling test.
inline double rel_error(const Tensor& ours, const Tensor& ref) {
  std::vector<double> a = ours.to_vector<double>(), b = ref.to_vector<double>();
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

}  // namespace siam::test

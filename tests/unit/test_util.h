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
#include "methods/options.h"
#include "models/resnet.h"

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

// Normwise relative error |ours - ref| / |ref| over all elements (|ref| floored at `floor`); a shape mismatch
// fails the calling test. Tensors on the CPU.
inline double rel_error(const Tensor& ours, const Tensor& ref, double floor = 1e-30) {
  std::vector<double> a = ours.to_vector<double>(), b = ref.to_vector<double>();
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), floor);
}

// A method's published defaults with heads, queue, prototypes and whitening sub-batch small enough for the
// methods tests (8x8 images, batches of 16-32): projector 24-12, predictor 10-12, a queue of 20, 7 prototypes,
// whitening sub-batches of 16, prototypes never frozen. Tests adjust single fields from there.
inline methods::MethodOptions tiny_method_options(const std::string& name) {
  methods::MethodOptions o = methods::defaults_for(name);
  o.projector.hidden = 24;
  o.projector.out = 12;
  o.predictor.hidden = 10;
  o.predictor.out = 12;
  o.queue_size = 20;
  o.prototypes = 7;
  o.whiten_size = 16;
  o.freeze_prototypes_steps = 0;
  return o;
}

// A ResNet-18 encoder (CIFAR stem, no classifier) of the given width for the methods tests.
inline std::shared_ptr<models::ResNet> tiny_resnet(int64_t width = 2, int64_t in_channels = 3) {
  return std::make_shared<models::ResNet>(models::ResNetConfig{
      .depth = 18, .width = width, .stem = models::Stem::cifar, .in_channels = in_channels, .num_classes = 0});
}

}  // namespace siam::test

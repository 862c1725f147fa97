// Shared by the tests of tests/cuda: the skip (with its reason) where no CUDA device is present, and the device
// the tests run on.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "engine/core/cuda_health.h"
#include "engine/core/device.h"

// With SIAM_EXPECT_CUDA=1 (set by scripts/gpu_check.sh where nvidia-smi sees a GPU) a missing device fails the
// test instead: a driver older than the toolkit must not turn the whole GPU run into skips.
#define SIAM_REQUIRE_CUDA()                                                                                      \
  do {                                                                                                           \
    if (!::siam::cuda_available()) {                                                                             \
      if (::siam::test::expect_cuda()) FAIL() << "SIAM_EXPECT_CUDA=1 but " << ::siam::cuda_unavailable_reason(); \
      GTEST_SKIP() << "no CUDA device on this machine: " << ::siam::cuda_unavailable_reason();                   \
    }                                                                                                            \
  } while (0)

namespace siam::test {
inline bool expect_cuda() {
  const char* e = std::getenv("SIAM_EXPECT_CUDA");
  return e && std::string(e) == "1";
}
}  // namespace siam::test

namespace siam {
inline const Device kDev("cuda:0");
}  // namespace siam

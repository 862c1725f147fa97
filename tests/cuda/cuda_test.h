// Shared by the tests of tests/cuda: the skip (with its reason) where no CUDA device is present, and the device
// the tests run on.
#pragma once
#include <gtest/gtest.h>

#include "engine/core/device.h"

#define SIAM_REQUIRE_CUDA()                                                                                \
  do {                                                                                                     \
    if (!::siam::cuda_available()) GTEST_SKIP() << "no CUDA device on this machine (or a CPU-only build)"; \
  } while (0)

namespace siam {
inline const Device kDev("cuda:0");
}  // namespace siam

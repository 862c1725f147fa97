// Test entry point: the same BLAS kernels as the siam program (engine/core/blas.h), then GoogleTest.
#include <gtest/gtest.h>

#include "engine/core/blas.h"

int main(int argc, char** argv) {
  siam::ensure_fast_blas(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

// The strided indexing of the CUDA kernels (kernels/cuda/offset.cuh: dim coalescing on the host, offsets per
// linear index on the device) checked on the CPU against a direct row-major walk, for random shapes, strides
// (transposed, sliced, broadcast) and both the 32-bit and the 64-bit division paths. Needs no device.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cuda/offset.cuh"

namespace siam::kernels::cuda {
namespace {

// Offsets of operand k at linear index i, straight from the uncoalesced shape and strides.
int64_t direct(int ndim, const int64_t* shape, const int64_t* strides, int64_t i) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

TEST(CudaOffsets, CoalescedOffsetsMatchADirectWalk) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int ndim = 1 + static_cast<int>(rng() % 5);
    std::vector<int64_t> shape(ndim);
    for (auto& s : shape) s = 1 + static_cast<int64_t>(rng() % 4);
    // operand 0 contiguous; 1 a permuted/sliced layout; 2 broadcast on random dims
    std::vector<int64_t> s0(ndim), s1(ndim), s2(ndim);
    int64_t acc = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      s0[d] = acc;
      acc *= shape[d];
    }
    acc = 1 + static_cast<int64_t>(rng() % 2);  // step 2 sometimes
    for (int d = 0; d < ndim; ++d) {             // column-major: a transposed view
      s1[d] = acc;
      acc *= shape[d];
    }
    for (int d = 0; d < ndim; ++d) s2[d] = (rng() % 2) ? 0 : s0[d];
    const int64_t* st[3] = {s0.data(), s1.data(), s2.data()};
    Offsets<3> o = make_offsets<3>(ndim, shape.data(), st);
    ASSERT_TRUE(o.small);
    int64_t n = 1;
    for (auto s : shape) n *= s;
    for (int64_t i = 0; i < n; ++i) {
      int64_t off[3];
      o.at(i, off);
      for (int k = 0; k < 3; ++k)
        ASSERT_EQ(off[k], direct(ndim, shape.data(), st[k], i)) << "trial " << trial << " operand " << k << " index " << i;
    }
    if (n > 1) {
      EXPECT_EQ(is_linear(make_offsets<1>(ndim, shape.data(), st)), true) << "a contiguous operand alone is linear";
    }
  }
}

TEST(CudaOffsets, SixtyFourBitIndices) {
  const int64_t shape[2] = {int64_t(1) << 20, int64_t(1) << 13};  // 2^33 elements
  const int64_t s0[2] = {int64_t(1) << 13, 1}, s1[2] = {1, int64_t(1) << 20};
  const int64_t* st[2] = {s0, s1};
  Offsets<2> o = make_offsets<2>(2, shape, st);
  ASSERT_FALSE(o.small);
  for (int64_t i : {int64_t(0), int64_t(1) << 32, (int64_t(1) << 33) - 1, int64_t(5000000007)}) {
    int64_t off[2];
    o.at(i, off);
    EXPECT_EQ(off[0], i);
    EXPECT_EQ(off[1], direct(2, shape, s1, i));
  }
}

TEST(CudaOffsets, SizeOneDimsAreDroppedAndScalarsHaveNoDims) {
  const int64_t shape[3] = {1, 5, 1}, s[3] = {99, 3, 77};
  const int64_t* st[1] = {s};
  Offsets<1> o = make_offsets<1>(3, shape, st);
  EXPECT_EQ(o.ndim, 1);
  EXPECT_EQ(o.stride[0][0], 3);
  Offsets<1> z = make_offsets<1>(0, shape, st);
  EXPECT_EQ(z.ndim, 0);
  EXPECT_TRUE(is_linear(z));
  int64_t off = -1;
  z.at(0, &off);
  EXPECT_EQ(off, 0);
}

}  // namespace
}  // namespace siam::kernels::cuda

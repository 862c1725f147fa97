// User mistakes on CUDA tensors give a siam::Error that names the op and the values at fault (label cuda):
// out-of-range indices of gather, index_select and scatter_add and out-of-range cross-entropy targets (the
// engine checks them on the host before any kernel runs: engine/ops/shape.cpp, engine/ops/loss.cpp), a
// binary op between a CPU and a CUDA tensor or between two devices, and bf16 batch norm on CUDA (norms run in
// f32; engine/ops/norm.cpp and kernels/cuda/cudnn_norm_pool.h). After each error the device still works.
// Each test skips with a reason where no CUDA device is present.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/norm.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/tensor.h"
#include "tests/cuda/cuda_test.h"
#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/cudnn_norm_pool.h"
#endif

namespace siam {
namespace {

using ::testing::HasSubstr;

// The message of the siam::Error that f throws ("" with a test failure when it throws none or another type).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected siam::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected siam::Error, nothing was thrown";
  return "";
}

// The device is still usable (no sticky error, no corrupted memory) after an error.
void expect_device_usable() {
  Tensor a = full({3, 5}, 2.0, TensorOptions(kDev));
  EXPECT_EQ(sum(mul(a, a)).to(kCPU).item(), 60.0);
}

TEST(CudaErrors, OutOfRangeIndicesAreErrorsNamingTheIndex) {
  SIAM_REQUIRE_CUDA();
  Tensor x = randn({4, 5}).to(kDev);
  struct Case {
    const char* op;
    std::function<Tensor()> run;
    const char* index;  // the offending value as the message prints it
  };
  const std::vector<Case> cases = {
      {"index_select",
       [&] {
         return index_select(x, 0, from_vector_i64({1, 4}, {2}).to(kDev));
       },
       "4"},
      {"index_select", [&] { return index_select(x, 1, from_vector_i64({-1}, {1}).to(kDev)); }, "-1"},
      {"gather",
       [&] {
         return gather(x, 1, from_vector_i64({0, 5, 1, 2}, {2, 2}).to(kDev));
       },
       "5"},
      {"gather",
       [&] {
         return gather(x, 0, from_vector_i64({3, -2}, {1, 2}).to(kDev));
       },
       "-2"},
      {"scatter_add",
       [&] {
         return scatter_add(x, 1, from_vector_i64({0, 7}, {1, 2}).to(kDev), ones({1, 2}).to(kDev));
       },
       "7"},
      {"scatter_add",
       [&] {
         return scatter_add(x, 0, from_vector_i64({4, 0}, {1, 2}).to(kDev), ones({1, 2}).to(kDev));
       },
       "4"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.op) + " with index " + c.index);
    const std::string m = error_of([&] { c.run(); });
    EXPECT_THAT(m, HasSubstr(c.op));
    EXPECT_THAT(m, HasSubstr(std::string("index ") + c.index + " out of range"));
  }
  // the i32 indices go through the same check
  EXPECT_THAT(error_of([&] { index_select(x, 0, from_vector_i64({9}, {1}).to(DType::i32).to(kDev)); }),
              HasSubstr("index 9 out of range [0, 4)"));
  expect_device_usable();
}

TEST(CudaErrors, CrossEntropyTargetOutOfRangeIsAnError) {
  SIAM_REQUIRE_CUDA();
  Tensor logits = randn({3, 4}).to(kDev);
  for (int64_t bad : {4, -1}) {
    const std::string m = error_of([&] { cross_entropy(logits, from_vector_i64({0, bad, 2}, {3}).to(kDev)); });
    EXPECT_THAT(m, HasSubstr("cross_entropy: target " + std::to_string(bad) + " of row 1 out of range [0, 4)"));
  }
  // the block-per-row path (rows longer than a warp's 1024) checks the same way
  Tensor wide = randn({2, 2000}).to(kDev);
  EXPECT_THAT(error_of([&] {
                cross_entropy(wide, from_vector_i64({2000, 0}, {2}).to(kDev));
              }),
              HasSubstr("target 2000 of row 0 out of range [0, 2000)"));
  // and a CPU target with CUDA logits is a device mismatch
  EXPECT_THAT(error_of([&] { cross_entropy(logits, from_vector_i64({0, 1, 2}, {3})); }), HasSubstr("device mismatch"));
  expect_device_usable();
}

TEST(CudaErrors, DeviceMismatchNamesBothDevices) {
  SIAM_REQUIRE_CUDA();
  Tensor c = ones({2, 3}), d = ones({2, 3}).to(kDev);
  for (const auto& [what, f] : std::vector<std::pair<std::string, std::function<void()>>>{
           {"add", [&] { add(c, d); }},
           {"mul", [&] { mul(d, c); }},
           {"maximum", [&] { maximum(c, d); }},
           {"matmul", [&] { matmul(d, c.t()); }},
       }) {
    SCOPED_TRACE(what);
    const std::string m = error_of(f);
    EXPECT_THAT(m, HasSubstr(what));
    EXPECT_THAT(m, HasSubstr("cpu"));
    EXPECT_THAT(m, HasSubstr("cuda:0"));
  }
  if (cuda_device_count() >= 2) {  // two devices: both named too
    const std::string m = error_of([&] { add(d, ones({2, 3}).to(Device("cuda:1"))); });
    EXPECT_THAT(m, HasSubstr("cuda:0"));
    EXPECT_THAT(m, HasSubstr("cuda:1"));
  }
  expect_device_usable();
}

TEST(CudaErrors, Bf16BatchNormIsRefused) {
  SIAM_REQUIRE_CUDA();
  Tensor x = randn({4, 3, 5, 5}).to(kDev).to(DType::bf16);
  for (bool training : {true, false}) {
    SCOPED_TRACE(training ? "training" : "eval");
    Tensor rm = zeros({3}).to(kDev), rv = ones({3}).to(kDev);
    const std::string m = error_of([&] { batch_norm(x, rm, rv, Tensor(), Tensor(), training, 0.1, 1e-5); });
    EXPECT_THAT(m, HasSubstr("batch_norm: CUDA input must be f32 or f64, got bf16"));
  }
#if defined(SIAM_WITH_CUDA)
  // and the kernel entry points refuse it too (a caller that skipped the front-end's check)
  EXPECT_THAT(error_of([] { kernels::cuda::check_bn_type(kernels::cuda::DenseType::bf16); }),
              HasSubstr("bf16 input on CUDA is not supported"));
  EXPECT_NO_THROW(kernels::cuda::check_bn_type(kernels::cuda::DenseType::f32));
#endif
  expect_device_usable();
}

}  // namespace
}  // namespace siam

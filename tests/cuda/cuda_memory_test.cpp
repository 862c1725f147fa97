// The CUDA backend's memory, streams and transfers (label cuda): the caching allocator's reuse and stats on
// a real device, pinned host memory and asynchronous copies (also through the data loader's reused pinned
// batches), streams and events, Philox dropout equality.
// Each test skips with a reason where no CUDA device is present; the allocator's bookkeeping is tested on
// every machine by tests/unit/cuda_allocator_logic_test.cpp.
#include <gtest/gtest.h>

#include <string>

#include "engine/core/random.h"
#include "engine/data/dataset.h"
#include "engine/data/loader.h"
#include "engine/data/views.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/tensor.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/stream.h"
#include "tests/cuda/cuda_test.h"

namespace siam {
namespace {

#if defined(SIAM_WITH_CUDA)
constexpr bool kCudaBuild = true;
#else
constexpr bool kCudaBuild = false;
#endif

TEST(CudaAllocator, ReusesBlocksAcrossIterations) {
  SIAM_REQUIRE_CUDA();
  if constexpr (kCudaBuild) {
    cuda::empty_cache(0);
    auto step = [] {
      Tensor a = randn({512, 1024}, TensorOptions(kDev));  // 2 MiB: large pool
      Tensor b = randn({1000}, TensorOptions(kDev));       // small pool
      Tensor c = add(a, a);
      Tensor s = sum(c);
      return s.item();
    };
    step();
    const auto before = cuda::device_alloc_stats(0);
    for (int i = 0; i < 5; ++i) step();
    const auto after = cuda::device_alloc_stats(0);
    EXPECT_EQ(after.device_mallocs, before.device_mallocs) << "a repeated step should be served from the cache";
    EXPECT_GT(after.cache_hits, before.cache_hits);
    EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  }
}

TEST(CudaAllocator, StatsTrackAllocatedReservedAndPeak) {
  SIAM_REQUIRE_CUDA();
  if constexpr (kCudaBuild) {
    cuda::empty_cache(0);
    const auto s0 = cuda::device_alloc_stats(0);
    cuda::reset_peak_device_stats(0);
    size_t during = 0;
    {
      Tensor t = empty({64 << 20}, TensorOptions(DType::u8, kDev));  // 64 MiB: a segment of its own
      const auto s1 = cuda::device_alloc_stats(0);
      EXPECT_EQ(s1.allocated_bytes, s0.allocated_bytes + (size_t(64) << 20));
      EXPECT_GE(s1.reserved_bytes, s1.allocated_bytes);
      EXPECT_EQ(s1.device_mallocs, s0.device_mallocs + 1);
      during = s1.allocated_bytes;
    }
    const auto s2 = cuda::device_alloc_stats(0);
    EXPECT_EQ(s2.allocated_bytes, s0.allocated_bytes);
    EXPECT_EQ(s2.peak_allocated_bytes, during);
    EXPECT_GE(s2.reserved_bytes, size_t(64) << 20) << "freed memory stays cached";
    cuda::empty_cache(0);
    const auto s3 = cuda::device_alloc_stats(0);
    EXPECT_LE(s3.reserved_bytes, s2.reserved_bytes - (size_t(64) << 20));
    EXPECT_GE(s3.device_frees, s2.device_frees + 1);
  }
}

TEST(CudaAllocator, OutOfMemoryIsAClearError) {
  SIAM_REQUIRE_CUDA();
  try {
    empty({int64_t(1) << 50}, TensorOptions(DType::u8, kDev));  // 1 PiB
    FAIL() << "expected siam::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos) << e.what();
  }
  Tensor ok = ones({4}, TensorOptions(kDev));  // the device is still usable
  EXPECT_EQ(sum(ok).item(), 4.0);
}

TEST(CudaTransfer, PinMemoryWithoutADeviceIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  Tensor x = ones({4});
  try {
    x.pin_memory();
    FAIL() << "expected siam::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pin"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sum(x).item(), 4.0);  // CPU work goes on
}

TEST(CudaTransfer, PinnedAsyncRoundTrip) {
  SIAM_REQUIRE_CUDA();
  Tensor x = randn({257, 129});
  Tensor p = x.pin_memory();
  EXPECT_TRUE(p.is_pinned());
  EXPECT_FALSE(x.is_pinned());
  EXPECT_TRUE(p.pin_memory().same(p));
  Tensor d = p.to(kDev, /*non_blocking=*/true);
  Tensor back = mul(d, 2.0).to(kCPU, /*non_blocking=*/true);
  EXPECT_TRUE(back.is_pinned());
  if constexpr (kCudaBuild) cuda::synchronize_stream(cuda::current_stream(0));
  EXPECT_EQ(back.to_vector<float>(), mul(x, 2.0).to_vector<float>());
  Tensor q = empty({16}, TensorOptions().with_pinned(true));
  EXPECT_TRUE(q.is_pinned());
}

// A blocking copy from pinned memory returns once the bytes are on the device, as PyTorch's does: writing the
// source right after it must not change what arrived, also when the copy was queued behind a long product.
TEST(CudaTransfer, BlockingCopyFromPinnedMemoryHasReadItsSourceWhenItReturns) {
  SIAM_REQUIRE_CUDA();
  Tensor a = randn({4096, 4096}).to(kDev);
  Tensor p = full({1 << 20}, 1.0).pin_memory();
  ASSERT_TRUE(p.is_pinned());
  Tensor busy = matmul(a, a);  // milliseconds of work queued ahead of the copy
  Tensor d = p.to(kDev);
  p.fill_(2.0);
  EXPECT_EQ(max(d).to(kCPU).item(), 1.0);
  EXPECT_EQ(min(d, {0}).to(kCPU).item(), 1.0);
  EXPECT_EQ(busy.size(0), 4096);
}

// The data loader refills pinned batches it handed out without freeing them. pinned_host_wait is what it
// waits on: after it returns, the asynchronous copy queued behind a long product has read its source, so a
// host write to the block no longer changes what arrives. Only blocks with recorded copies count a wait.
TEST(CudaTransfer, PinnedHostWaitLetsTheHostRewriteTheSourceOfAnAsyncCopy) {
  SIAM_REQUIRE_CUDA();
  if constexpr (kCudaBuild) {
    Tensor a = randn({4096, 4096}).to(kDev);
    Tensor p = full({1 << 20}, 1.0).pin_memory();
    Tensor untouched = full({64}, 3.0).pin_memory();
    const size_t waits = cuda::pinned_stats().host_waits;
    Tensor busy = matmul(a, a);  // milliseconds of work queued ahead of the copy
    Tensor d = p.to(kDev, /*non_blocking=*/true);
    cuda::pinned_host_wait(p.storage()->data());
    p.fill_(2.0);
    cuda::pinned_host_wait(untouched.storage()->data());  // no copy recorded: returns at once, counts nothing
    cuda::pinned_host_wait(a.storage()->data());          // not a pinned block: no-op
    EXPECT_EQ(cuda::pinned_stats().host_waits, waits + 1);
    EXPECT_EQ(max(d).to(kCPU).item(), 1.0);
    EXPECT_EQ(min(d, {0}).to(kCPU).item(), 1.0);
    EXPECT_EQ(busy.size(0), 4096);
  }
}

// The loader with pin_memory and reused buffers, fed the way the trainer feeds the GPU: each batch copied
// asynchronously behind queued work and let go at once. Every device batch must hold what a pageable loader
// built for the same step, although the worker refills the released pinned buffers while copies may be in
// flight.
TEST(CudaLoader, ReusedPinnedBatchesAreRefilledOnlyAfterTheirCopies) {
  SIAM_REQUIRE_CUDA();
  if constexpr (kCudaBuild) {
    auto dataset = std::make_shared<data::SyntheticDataset>(
        data::SyntheticOptions{.n = 48, .h = 20, .w = 24, .c = 3, .classes = 4, .seed = 9});
    const std::vector<data::ViewSpec> views = {data::simclr_view(16, 3)};
    data::Loader plain(dataset, data::ViewPipeline(views, 3), {.batch_size = 4, .seed = 5, .threads = 0});
    data::Loader pinned(dataset, data::ViewPipeline(views, 3),
                        {.batch_size = 4, .seed = 5, .threads = 1, .prefetch = 1, .pin_memory = true});
    const size_t waits = cuda::pinned_stats().host_waits;
    Tensor a = randn({1536, 1536}).to(kDev);
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      plain.start_epoch(epoch);
      pinned.start_epoch(epoch);
      std::vector<Tensor> on_device;
      std::vector<std::vector<float>> expected;
      data::Batch b, ref;
      while (pinned.next(b)) {
        ASSERT_TRUE(plain.next(ref));
        ASSERT_TRUE(b.views[0].is_pinned());
        Tensor busy = matmul(a, a);  // the copy waits behind it, as behind a training step
        on_device.push_back(b.views[0].to(kDev, /*non_blocking=*/true));
        expected.push_back(ref.views[0].to_vector<float>());
      }
      ASSERT_EQ(on_device.size(), 12u);
      for (size_t i = 0; i < on_device.size(); ++i)
        EXPECT_EQ(on_device[i].to(kCPU).to_vector<float>(), expected[i]) << "epoch " << epoch << " batch " << i;
    }
    EXPECT_GT(pinned.batches_reused(), 0);
    EXPECT_GT(cuda::pinned_stats().host_waits, waits);
  }
}

// An asynchronous copy from pinned memory to the second device while the first is current: the block's events
// must be recorded on the copy's device (CUDA refuses an event on another device's stream, and with the null
// stream the first device's would be taken: the wait would not cover the copy). On a GPU the values show it;
// the emulator, whose copies are synchronous, checks the event-stream devices (kernels/emu/runtime_emu.cpp).
// Skipped with one device (the emulator: SIAM_EMU_DEVICES=2, as cuda_emu.tests_reversed runs).
TEST(CudaTransfer, PinnedAsyncCopyToTheSecondDevice) {
  SIAM_REQUIRE_CUDA();
  if (cuda_device_count() < 2) GTEST_SKIP() << "needs two CUDA devices";
  if constexpr (kCudaBuild) {
    cuda::set_device(0);
    Tensor p = full({4096}, 5.0).pin_memory();
    Tensor d = p.to(Device("cuda:1"), /*non_blocking=*/true);
    cuda::pinned_host_wait(p.storage()->data());
    p.fill_(6.0);
    EXPECT_EQ(max(d).to(kCPU).item(), 5.0);
    EXPECT_EQ(min(d, {0}).to(kCPU).item(), 5.0);
    Tensor back = mul(d, 2.0).to(kCPU, /*non_blocking=*/true);  // device 1 to pinned memory, device 0 current
    cuda::synchronize_device(1);
    EXPECT_EQ(back.to_vector<float>(), std::vector<float>(4096, 10.0f));
  }
}

TEST(CudaTransfer, BlockingCopiesAndDtypeConversions) {
  SIAM_REQUIRE_CUDA();
  Tensor x = clamp(abs(mul(randn({33, 65}), 100.0)), 0.0, 255.0);  // in range for every dtype, u8 included
  for (DType dt : {DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8}) {
    Tensor cpu = x.to(dt).to(DType::f32);
    Tensor gpu = x.to(kDev).to(dt).to(DType::f32).to(kCPU);
    EXPECT_EQ(gpu.to_vector<float>(), cpu.to_vector<float>()) << dtype_name(dt);
    Tensor nc = x.t();  // strided conversion
    EXPECT_EQ(nc.to(kDev).to(dt).to(kCPU).to(DType::f32).to_vector<float>(),
              nc.to(dt).to(DType::f32).to_vector<float>())
        << dtype_name(dt) << " strided";
  }
}

TEST(CudaStreams, WorkOnAnotherStreamMatchesTheCpu) {
  SIAM_REQUIRE_CUDA();
  if constexpr (kCudaBuild) {
    Tensor x = randn({300, 70});
    cuda::StreamHandle s = cuda::create_stream();
    Tensor y;
    {
      cuda::StreamGuard g(s, 0);
      EXPECT_EQ(cuda::current_stream(0), s);
      Tensor d = x.to(kDev);
      y = softmax(d, 1).to(kCPU);
    }
    EXPECT_EQ(cuda::current_stream(0), cuda::compute_stream(0));
    cuda::synchronize_stream(s);
    auto a = y.to_vector<float>(), b = softmax(x, 1).to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-6f) << i;
    cuda::destroy_stream(s);
    EXPECT_NE(cuda::comm_stream(0), nullptr);
    EXPECT_NE(cuda::copy_stream(0), nullptr);
    cuda::Event e(true), f(true);
    e.record(cuda::current_stream(0));
    f.record(cuda::current_stream(0));
    f.synchronize();
    EXPECT_TRUE(f.query());
    EXPECT_GE(e.elapsed_ms(f), 0.0f);
  }
}

TEST(CudaParity, DropoutMaskMatchesTheCpu) {
  SIAM_REQUIRE_CUDA();
  Tensor x = ones({1000, 33});
  manual_seed(5);
  auto cpu = dropout(x, 0.4).to_vector<float>();
  manual_seed(5);
  auto gpu = dropout(x.to(kDev), 0.4).to_vector<float>();
  EXPECT_EQ(cpu, gpu);
}

// The pinned cache serves repeated pin_memory() of one size from freed blocks: after the first allocation (one
// per block alive at once) host_allocs stays flat, and a freed block shows in cached_bytes until reused. Also
// when the block was the source of an asynchronous copy (its reuse waits for the copy's stream).
TEST(CudaTransfer, PinnedBlocksOfOneSizeAreReused) {
  SIAM_REQUIRE_CUDA();
  if constexpr (kCudaBuild) {
    constexpr size_t kClass = size_t(4) << 20;
    Tensor x = randn({3 << 18});  // 3 MiB: the 4 MiB class
    const auto want = x.to_vector<float>();
    cuda::synchronize_stream(cuda::current_stream(0));  // earlier copies done: no block of theirs still pending
    cuda::pinned_empty_cache();                         // and no cached block of this class from earlier tests
    const auto s0 = cuda::pinned_stats();
    EXPECT_EQ(x.pin_memory().to_vector<float>(), want);  // allocated, then freed
    const auto s1 = cuda::pinned_stats();
    EXPECT_EQ(s1.host_allocs, s0.host_allocs + 1);
    EXPECT_EQ(s1.allocated_bytes, s0.allocated_bytes);
    EXPECT_EQ(s1.cached_bytes, s0.cached_bytes + kClass) << "the freed block should stay cached";
    for (int i = 0; i < 5; ++i) {
      Tensor d;
      {
        Tensor p = x.pin_memory();
        ASSERT_TRUE(p.is_pinned());
        EXPECT_EQ(cuda::pinned_stats().cached_bytes, s0.cached_bytes) << "iteration " << i << ": not the cached block";
        d = p.to(kDev, /*non_blocking=*/true);  // recorded on the block: its reuse waits for this copy
      }
      cuda::synchronize_stream(cuda::current_stream(0));
      EXPECT_EQ(d.to(kCPU).to_vector<float>(), want);
    }
    const auto s2 = cuda::pinned_stats();
    EXPECT_EQ(s2.host_allocs, s1.host_allocs) << "repeated pin_memory() of one size allocated again";
    // two blocks alive at once need a second allocation, once; then both are reused
    for (int i = 0; i < 3; ++i) {
      Tensor a = x.pin_memory(), b = x.pin_memory();
      EXPECT_NE(a.storage()->data(), b.storage()->data());
    }
    const auto s3 = cuda::pinned_stats();
    EXPECT_EQ(s3.host_allocs, s2.host_allocs + 1);
    EXPECT_EQ(s3.cached_bytes, s0.cached_bytes + 2 * kClass);
    cuda::pinned_empty_cache();
    EXPECT_EQ(cuda::pinned_stats().cached_bytes, s0.cached_bytes);
  }
}

}  // namespace
}  // namespace siam

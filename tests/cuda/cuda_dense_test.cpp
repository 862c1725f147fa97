// CUDA dense math against the CPU (label cuda): matmul and linear (cuBLASLt), conv2d and batch norm (cuDNN),
// the pooling kernels, autocast bf16 and TF32, the algorithm caches, and a whole ResNet-18 step.
// Each case runs the same op on CPU tensors and on cuda:0 copies, forward and backward (the same output
// gradient on both devices), and compares with a normalized error: max |cuda - cpu| / max(|cpu|, 1e-3) per
// tensor, so the bound does not depend on the scale. Bounds by arithmetic:
//   f32 exact (FMA) GEMM   kTolF32   = 2e-5  (summation order: cuBLASLt splits K differently)
//   f32 conv, batch norm   kTolConv  = 2e-4  (cuDNN's Winograd and FFT algorithms transform the inputs;
//                                             one-pass statistics)
//   f32 with TF32          kTolTf32  = 1e-2  (10-bit mantissa inputs, f32 accumulation)
//   bf16 inputs (autocast) kTolBf16  = 3e-2  (8-bit mantissa inputs, f32 accumulation)
//   whole ResNet-18 (f32)  kTolModel = 2e-3 for the logits and running statistics, kTolModelGrad = 3e-2 for
//                          the gradients: an element whose ReLU input rounds to the other side of 0 drops or keeps
//                          its whole gradient, which the convolutions below spread over a patch (seen on the CUDA
//                          emulator: one ReLU input at -1.7e-7 in f64 and +9.9e-8 on the device moved layer2's input
//                          gradient by 3e-3, while every op alone agrees to 2e-6). The f64 twin checks the math to
//                          1e-9.
// Tests that need a device skip with the reason where none is present; the autocast-scope and TF32-setting
// tests run everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/autocast.h"
#include "engine/core/random.h"
#include "engine/nn/batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/conv.h"
#include "engine/ops/linalg.h"
#include "engine/ops/norm.h"
#include "engine/ops/pool.h"
#include "engine/tensor.h"
#include "kernels/cuda/cudnn_norm_pool.h"  // CUDA-free header: the pool index arithmetic runs on the host too
#include "models/resnet.h"
#include "tests/cuda/cuda_test.h"
#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/cudnn_conv.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/runtime.h"
#endif

namespace siam {
namespace {

constexpr double kTolF32 = 2e-5, kTolConv = 2e-4, kTolTf32 = 1e-2, kTolBf16 = 3e-2, kTolModel = 2e-3,
                 kTolModelGrad = 3e-2;
// The least normalized distance from the exact f32 result that a TF32 or bf16 product must show (K >= 72 products
// of uniform(-1, 1) operands move by about 3e-4 in TF32 and 2e-3 in bf16): below it, the rounding was skipped.
constexpr double kTf32Visible = 5e-5, kBf16Visible = 2e-4;

// max |got - want| / max(max |want|, 1e-3); got may live on the device. NaN when shapes differ.
double norm_err(const Tensor& got, const Tensor& want) {
  if (!got.defined() || !want.defined() || got.shape() != want.shape()) return std::nan("");
  auto g = got.to_vector<double>(), w = want.to_vector<double>();
  double diff = 0, scale = 1e-3;
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::isnan(g[i]) != std::isnan(w[i])) return std::nan("");
    if (std::isnan(w[i])) continue;
    diff = std::max(diff, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  return diff / scale;
}

#define EXPECT_CLOSE(got, want, tol, what)                                                          \
  do {                                                                                              \
    const double e_ = norm_err((got), (want));                                                      \
    EXPECT_TRUE(e_ <= (tol)) << (what) << ": normalized error " << e_ << " > " << (tol) << " (shape " \
                             << shape_str((want).shape()) << ")";                                   \
  } while (0)

// A leaf on the device holding the same values as the CPU leaf `t` (optionally a non-contiguous view of them).
Tensor device_leaf(const Tensor& t, bool noncontig = false, bool grad = true) {
  Tensor d = t.detach().to(kDev);
  if (noncontig && d.dim() >= 2) d = d.transpose(0, -1).contiguous().transpose(0, -1);  // same values, strided
  d = d.detach();
  if (grad) d.set_requires_grad(true);
  return d;
}
Tensor cpu_leaf(const Tensor& t, bool grad = true) {
  Tensor c = t.detach().clone().detach();
  if (grad) c.set_requires_grad(true);
  return c;
}

// Runs fn on CPU leaves and on device leaves of the same values, backward with one output gradient, and
// compares the output and every input gradient.
template <class Fn>
void check_parity(const std::string& label, const std::vector<Tensor>& inputs, Fn fn, double tol,
                  bool noncontig = false) {
  SCOPED_TRACE(label + (noncontig ? " (non-contiguous inputs)" : ""));
  std::vector<Tensor> ci, di;
  for (const auto& x : inputs) {
    const bool grad = x.defined();
    ci.push_back(x.defined() ? cpu_leaf(x, grad) : Tensor());
    di.push_back(x.defined() ? device_leaf(x, noncontig, grad) : Tensor());
  }
  Tensor yc = fn(ci), yd = fn(di);
  ASSERT_TRUE(yd.is_cuda());
  EXPECT_CLOSE(yd, yc, tol, "output");
  Tensor g = uniform(yc.shape(), -1.0, 1.0);
  yc.backward(g);
  yd.backward(g.to(kDev));
  for (size_t i = 0; i < ci.size(); ++i) {
    if (!ci[i].defined()) continue;
    ASSERT_TRUE(di[i].grad().defined()) << "input " << i << " got no gradient on the device";
    EXPECT_EQ(di[i].grad().dtype(), di[i].dtype()) << "input " << i;
    EXPECT_CLOSE(di[i].grad(), ci[i].grad(), tol, "gradient of input " + std::to_string(i));
  }
}

// Restores the TF32 setting at the end of a test.
struct Tf32Scope {
  bool prev = cuda::allow_tf32();
  explicit Tf32Scope(bool on) { cuda::set_allow_tf32(on); }
  ~Tf32Scope() { cuda::set_allow_tf32(prev); }
};

Tensor rnd(const Shape& s) { return uniform(s, -1.0, 1.0); }

// ---------------------------------------------------------------------------------------------- settings

TEST(CudaAutocast, GuardNestsAndRestores) {
  EXPECT_FALSE(autocast_enabled());
  {
    AutocastGuard outer(DType::bf16);
    EXPECT_TRUE(autocast_enabled());
    EXPECT_EQ(autocast_dtype(), DType::bf16);
    {
      AutocastGuard off(DType::bf16, /*enabled=*/false);
      EXPECT_FALSE(autocast_enabled());
    }
    EXPECT_TRUE(autocast_enabled());
  }
  EXPECT_FALSE(autocast_enabled());
  EXPECT_THROW({ AutocastGuard bad(DType::f16); }, Error);
}

TEST(CudaAutocast, CpuTensorsAreNotCast) {
  manual_seed(1);
  Tensor x = rnd({5, 7}), w = rnd({3, 7}), b = rnd({3});
  Tensor want = linear(x, w, b);
  AutocastGuard guard(DType::bf16);
  Tensor got = linear(x, w, b);
  EXPECT_EQ(got.dtype(), DType::f32);
  EXPECT_EQ(got.to_vector<float>(), want.to_vector<float>());
}

TEST(CudaTf32, SettingRoundTrips) {
  Tf32Scope scope(true);
  EXPECT_TRUE(cuda::allow_tf32());
  cuda::set_allow_tf32(false);
  EXPECT_FALSE(cuda::allow_tf32());
}

// The index arithmetic of the CUDA pooling backward (kernels/cuda/cudnn_norm_pool.h, host-callable): the
// windows covering each input position, against brute force over every window, for the geometries the pool
// front-end allows (padding at most half the kernel, ceil_mode's output count).
TEST(CudaPoolIndex, CoveringWindowsAreExact) {
  namespace pi = kernels::cuda::pool_index;
  for (int64_t in = 1; in <= 13; ++in)
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t s = 1; s <= 4; ++s)
        for (int64_t pad = 0; pad <= k / 2; ++pad)
          for (bool ceil_mode : {false, true}) {
            // engine/ops/pool.cpp's output size
            const int64_t num = in + 2 * pad - (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
            int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
            if (ceil_mode && (out - 1) * s >= in + pad) --out;
            if (out < 1) continue;
            for (int64_t i = 0; i < in; ++i) {
              int64_t lo = 0, hi = 0;
              pi::covering(i, k, s, pad, out, lo, hi);
              for (int64_t o = 0; o < out; ++o) {
                const bool covers = o * s - pad <= i && i < o * s - pad + k;
                EXPECT_EQ(covers, o >= lo && o <= hi) << "in " << in << " k " << k << " s " << s << " pad " << pad
                                                      << " out " << out << " i " << i << " o " << o;
              }
            }
          }
  for (int64_t in = 1; in <= 17; ++in)
    for (int64_t out = 1; out <= 19; ++out)
      for (int64_t i = 0; i < in; ++i) {
        int64_t lo = 0, hi = 0;
        pi::adaptive_covering(i, in, out, lo, hi);
        for (int64_t o = 0; o < out; ++o) {
          const bool covers = pi::adaptive_start(o, in, out) <= i && i < pi::adaptive_end(o, in, out);
          EXPECT_EQ(covers, o >= lo && o <= hi) << "adaptive in " << in << " out " << out << " i " << i << " o " << o;
        }
      }
}

// ---------------------------------------------------------------------------------------------- matmul, linear

TEST(CudaDense, MatmulMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  Tf32Scope exact(false);
  manual_seed(2);
  auto mm = [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); };
  auto mm_at = [](const std::vector<Tensor>& v) { return matmul(v[0].transpose(-1, -2), v[1]); };
  for (bool nc : {false, true}) {
    check_parity("[64,96] @ [96,48]", {rnd({64, 96}), rnd({96, 48})}, mm, kTolF32, nc);
    check_parity("[1,7] @ [7,1]", {rnd({1, 7}), rnd({7, 1})}, mm, kTolF32, nc);
    check_parity("[513,257] @ [257,130] (odd sizes)", {rnd({513, 257}), rnd({257, 130})}, mm, kTolF32, nc);
    check_parity("a^T: [96,64]^T @ [96,48]", {rnd({96, 64}), rnd({96, 48})}, mm_at, kTolF32, nc);
    check_parity("batched [3,17,33] @ [3,33,9]", {rnd({3, 17, 33}), rnd({3, 33, 9})}, mm, kTolF32, nc);
    check_parity("folded batch [4,8,16] @ [16,12]", {rnd({4, 8, 16}), rnd({16, 12})}, mm, kTolF32, nc);
  }
  check_parity("broadcast batch [2,1,4,6] @ [3,6,5]", {rnd({2, 1, 4, 6}), rnd({3, 6, 5})}, mm, kTolF32);
  check_parity("matrix @ vector [6,5] @ [5]", {rnd({6, 5}), rnd({5})}, mm, kTolF32);
}

TEST(CudaDense, LinearMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  Tf32Scope exact(false);
  manual_seed(3);
  auto lin = [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); };
  for (bool nc : {false, true}) {
    check_parity("[32,64] x [48,64]^T + b", {rnd({32, 64}), rnd({48, 64}), rnd({48})}, lin, kTolF32, nc);
    check_parity("no bias [32,64] x [48,64]^T", {rnd({32, 64}), rnd({48, 64}), Tensor()}, lin, kTolF32, nc);
    check_parity("3-D input [4,5,24] x [10,24]^T + b", {rnd({4, 5, 24}), rnd({10, 24}), rnd({10})}, lin, kTolF32,
                 nc);
    check_parity("projector [256,512] x [128,512]^T + b", {rnd({256, 512}), rnd({128, 512}), rnd({128})}, lin,
                 kTolF32, nc);
  }
  check_parity("one row [1,9] x [3,9]^T + b", {rnd({1, 9}), rnd({3, 9}), rnd({3})}, lin, kTolF32);
}

TEST(CudaDense, GemmTf32AndBf16) {
  SIAM_REQUIRE_CUDA();
  manual_seed(4);
  auto mm = [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); };
  {
    Tf32Scope tf32(true);
    check_parity("TF32 [128,256] @ [256,64]", {rnd({128, 256}), rnd({256, 64})}, mm, kTolTf32);
    // the setting reaches the GEMM: the product moves away from the exact f32 one, within the TF32 bound
    Tensor a = rnd({128, 256}), b = rnd({256, 64});
    const Tensor exact = matmul(a, b);
    const double e = norm_err(matmul(a.to(kDev), b.to(kDev)), exact);
    EXPECT_LE(e, kTolTf32) << "TF32 product";
    EXPECT_GT(e, kTf32Visible) << "TF32 allowed, yet the product is the exact f32 one: the setting never reached it";
    cuda::set_allow_tf32(false);
    EXPECT_LE(norm_err(matmul(a.to(kDev), b.to(kDev)), exact), kTolF32) << "TF32 switched off again";
  }
  // bf16 tensors (outside autocast): bf16 results, against the CPU product of the same rounded values
  Tensor a = rnd({96, 160}).to(DType::bf16).to(DType::f32), b = rnd({160, 40}).to(DType::bf16).to(DType::f32);
  Tensor want = matmul(a, b);
  Tensor got = matmul(a.to(DType::bf16).to(kDev), b.to(DType::bf16).to(kDev));
  EXPECT_EQ(got.dtype(), DType::bf16);
  EXPECT_CLOSE(got.to(kCPU).to(DType::f32), want, kTolBf16, "bf16 matmul");
}

TEST(CudaDense, GemmAlgorithmCacheIsReused) {
  SIAM_REQUIRE_CUDA();
#if defined(SIAM_WITH_CUDA)
  Tf32Scope exact(false);
  manual_seed(5);
  Tensor a = rnd({77, 55}).to(kDev), b = rnd({55, 33}).to(kDev);
  matmul(a, b);
  const auto s1 = kernels::cuda::gemm_cache_stats();
  Tensor y = matmul(a, b);
  const auto s2 = kernels::cuda::gemm_cache_stats();
  EXPECT_EQ(s2.misses, s1.misses) << "the second product of the same shape searched again";
  EXPECT_GT(s2.lookups, s1.lookups);
  EXPECT_CLOSE(y, matmul(a.to(kCPU), b.to(kCPU)), kTolF32, "cached plan");
  {
    Tf32Scope tf32(true);  // another key: TF32 is part of it
    matmul(a, b);
    EXPECT_EQ(kernels::cuda::gemm_cache_stats().misses, s2.misses + 1);
  }
#endif
}

// ---------------------------------------------------------------------------------------------- conv2d

struct ConvShape {
  const char* label;
  Shape x, w;
  Conv2dParams p;
  bool bias;
};

std::vector<ConvShape> conv_shapes() {
  auto P = [](int64_t s, int64_t pad, int64_t d = 1, int64_t g = 1) {
    Conv2dParams p;
    p.stride = {s, s}, p.padding = {pad, pad}, p.dilation = {d, d}, p.groups = g;
    return p;
  };
  return {
      {"ResNet-18 CIFAR stem 3->64 3x3 s1 @32", {4, 3, 32, 32}, {64, 3, 3, 3}, P(1, 1), false},
      {"ResNet-18 layer1 64->64 3x3 s1 @32", {4, 64, 32, 32}, {64, 64, 3, 3}, P(1, 1), false},
      {"ResNet-18 layer2 64->128 3x3 s2 @32", {4, 64, 32, 32}, {128, 64, 3, 3}, P(2, 1), false},
      {"ResNet-18 downsample 64->128 1x1 s2 @32", {4, 64, 32, 32}, {128, 64, 1, 1}, P(2, 0), false},
      {"1-channel stem 1->16 3x3 @28", {4, 1, 28, 28}, {16, 1, 3, 3}, P(1, 1), true},
      {"ImageNet stem 3->16 7x7 s2 p3 @40", {2, 3, 40, 40}, {16, 3, 7, 7}, P(2, 3), false},
      {"bias, dilation 2, odd sizes", {3, 5, 13, 11}, {7, 5, 3, 3}, P(1, 2, 2), true},
      {"groups 2", {2, 8, 9, 9}, {6, 4, 3, 3}, P(1, 1, 1, 2), true},
  };
}

TEST(CudaDense, Conv2dMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  Tf32Scope exact(false);
  manual_seed(6);
  for (const ConvShape& c : conv_shapes()) {
    const Conv2dParams p = c.p;
    auto fn = [p](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], p); };
    std::vector<Tensor> in{rnd(c.x), rnd(c.w), c.bias ? rnd({c.w[0]}) : Tensor()};
    check_parity(c.label, in, fn, kTolConv);
  }
  // a non-contiguous input and weight (transposed views)
  const ConvShape c = conv_shapes()[1];  // a copy: the vector is a temporary
  const Conv2dParams p = c.p;
  check_parity(c.label, {rnd(c.x), rnd(c.w), Tensor()},
               [p](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], p); }, kTolConv, true);
}

// With TF32 allowed, the forward, backward-data and backward-filter convolutions stay within the TF32 bound of
// the exact f32 ones and move away from them: the setting reaches the convolution.
TEST(CudaDense, Conv2dHonoursTf32) {
  SIAM_REQUIRE_CUDA();
  manual_seed(13);
  Conv2dParams p;
  p.padding = {1, 1};
  Tensor x = rnd({2, 32, 12, 12}), w = rnd({16, 32, 3, 3}), g = rnd({2, 16, 12, 12});
  Tensor xc = cpu_leaf(x), wc = cpu_leaf(w);
  conv2d(xc, wc, Tensor(), p).backward(g);
  const Tensor yc = conv2d(x, w, Tensor(), p);
  Tf32Scope tf32(true);
  Tensor xd = device_leaf(x), wd = device_leaf(w);
  Tensor yd = conv2d(xd, wd, Tensor(), p);
  yd.backward(g.to(kDev));
  const std::vector<std::pair<const char*, std::pair<Tensor, Tensor>>> results = {
      {"forward", {yd, yc}}, {"backward-data", {xd.grad(), xc.grad()}}, {"backward-filter", {wd.grad(), wc.grad()}}};
  for (const auto& [what, r] : results) {
    const double e = norm_err(r.first, r.second);
    EXPECT_LE(e, kTolTf32) << what;
    // TF32 is a permission: on a GPU cuDNN may still pick an FMA algorithm at this shape, so only the emulator
    // (whose stand-in rounds whenever allowed) must show it; a GPU run prints what it chose.
#if defined(SIAM_WITH_CUDA)
    if (cuda::emulated())
      EXPECT_GT(e, kTf32Visible) << what << ": TF32 allowed, yet the result is the exact f32 one";
    else if (e <= kTf32Visible)
      std::cout << "[ note     ] conv " << what << ": cuDNN chose no TF32 algorithm at this shape\n";
#endif
  }
}

TEST(CudaDense, Conv2dAlgorithmCacheIsReused) {
  SIAM_REQUIRE_CUDA();
#if defined(SIAM_WITH_CUDA)
  Tf32Scope exact(false);
  manual_seed(7);
  Conv2dParams p;
  p.padding = {1, 1};
  Tensor x = device_leaf(rnd({2, 6, 10, 10})), w = device_leaf(rnd({5, 6, 3, 3}));
  Tensor g = rnd({2, 5, 10, 10}).to(kDev);
  conv2d(x, w, Tensor(), p).backward(g);
  const auto s1 = kernels::cuda::conv_cache_stats();
  conv2d(x, w, Tensor(), p).backward(g);
  const auto s2 = kernels::cuda::conv_cache_stats();
  EXPECT_EQ(s2.misses, s1.misses) << "forward, backward-data or backward-filter searched again";
  EXPECT_EQ(s2.lookups, s1.lookups + 3);
  Tensor x2 = device_leaf(rnd({3, 6, 10, 10}));  // another batch size: three new plans
  conv2d(x2, w, Tensor(), p).backward(rnd({3, 5, 10, 10}).to(kDev));
  EXPECT_EQ(kernels::cuda::conv_cache_stats().misses, s2.misses + 3);
#endif
}

// ---------------------------------------------------------------------------------------------- batch norm

// The module on the device counts its batches on the device (no host read per forward) and keeps the same
// running statistics as on the CPU; with momentum none it reads the count (the factor is 1 / count).
TEST(CudaDense, BatchNormModuleCountsOnTheDevice) {
  SIAM_REQUIRE_CUDA();
  manual_seed(9);
  for (bool cumulative : {false, true}) {
    nn::BatchNormOptions o;
    if (cumulative) o.momentum = std::nullopt;
    nn::BatchNorm2d cpu(6, o), gpu(6, o);
    gpu.to(kDev);
    for (int i = 0; i < 3; ++i) {
      Tensor x = randn({8, 6, 4, 4});
      cpu.forward(x);
      gpu.forward(x.to(kDev));
    }
    ASSERT_TRUE(gpu.num_batches_tracked().is_cuda());
    EXPECT_EQ(gpu.num_batches_tracked().to(kCPU).item(), 3.0);
    EXPECT_EQ(cpu.num_batches_tracked().item(), 3.0);
    EXPECT_LE(max(abs(sub(gpu.running_mean().to(kCPU), cpu.running_mean()))).item(), 1e-6);
    EXPECT_LE(max(abs(sub(gpu.running_var().to(kCPU), cpu.running_var()))).item(), 1e-6);
  }
}

TEST(CudaDense, BatchNormMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  manual_seed(8);
  for (const Shape& xs : {Shape{8, 16, 5, 5}, Shape{32, 12}, Shape{4, 6, 10}, Shape{16, 64, 32, 32}}) {
    const int64_t C = xs[1];
    for (bool affine : {true, false}) {
      const std::string label = shape_str(xs) + (affine ? " affine" : " no affine");
      Tensor x = uniform(xs, -2.0, 3.0);
      Tensor w = affine ? uniform({C}, 0.5, 1.5) : Tensor(), b = affine ? rnd({C}) : Tensor();
      // training: outputs, gradients, and the running statistics both devices updated
      Tensor rm_c = rnd({C}), rv_c = uniform({C}, 0.5, 2.0);
      Tensor rm_d = rm_c.to(kDev), rv_d = rv_c.to(kDev);
      auto train = [&](const std::vector<Tensor>& v) {
        const bool dev = v[0].is_cuda();
        return batch_norm(v[0], dev ? rm_d : rm_c, dev ? rv_d : rv_c, v[1], v[2], /*training=*/true, 0.1, 1e-5);
      };
      check_parity("train " + label, {x, w, b}, train, kTolConv);
      EXPECT_CLOSE(rm_d, rm_c, kTolConv, "running_mean " + label);
      EXPECT_CLOSE(rv_d, rv_c, kTolConv, "running_var " + label);
      // eval: the running statistics normalize
      auto eval = [&](const std::vector<Tensor>& v) {
        const bool dev = v[0].is_cuda();
        return batch_norm(v[0], dev ? rm_d : rm_c, dev ? rv_d : rv_c, v[1], v[2], /*training=*/false, 0.1, 1e-5);
      };
      check_parity("eval " + label, {x, w, b}, eval, kTolConv);
    }
  }
  // training without running statistics, non-contiguous input
  auto no_stats = [](const std::vector<Tensor>& v) {
    return batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], true, 0.1, 1e-3);
  };
  check_parity("no running stats", {rnd({6, 4, 3, 5}), rnd({4}), rnd({4})}, no_stats, kTolConv, true);
}

// ---------------------------------------------------------------------------------------------- pooling

TEST(CudaDense, PoolingMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  manual_seed(9);
  auto P = [](int64_t k, int64_t s, int64_t pad, bool ceil = false, bool include_pad = true) {
    Pool2dParams p;
    p.kernel = {k, k}, p.stride = {s, s}, p.padding = {pad, pad}, p.ceil_mode = ceil;
    p.count_include_pad = include_pad;
    return p;
  };
  struct Case {
    const char* label;
    Shape x;
    Pool2dParams p;
  };
  const std::vector<Case> cases = {
      {"ResNet stem max 3x3 s2 p1 @32", {4, 8, 32, 32}, P(3, 2, 1)},
      {"2x2 s2 @9 (odd)", {2, 3, 9, 9}, P(2, 2, 0)},
      {"3x3 s2 ceil_mode @10", {2, 3, 10, 10}, P(3, 2, 0, true)},
      {"3x3 s2 p1 ceil_mode @11", {2, 3, 11, 11}, P(3, 2, 1, true)},
      {"3x3 s1 p1 no pad count @7 (C, H, W input)", {3, 7, 7}, P(3, 1, 1, false, false)},
  };
  for (bool nc : {false, true})
    for (const Case& c : cases) {
      const Pool2dParams p = c.p;
      check_parity(std::string("max ") + c.label, {rnd(c.x)},
                   [p](const std::vector<Tensor>& v) { return max_pool2d(v[0], p); }, kTolF32, nc);
      check_parity(std::string("avg ") + c.label, {rnd(c.x)},
                   [p](const std::vector<Tensor>& v) { return avg_pool2d(v[0], p); }, kTolF32, nc);
    }
  for (std::array<int64_t, 2> os : {std::array<int64_t, 2>{1, 1}, {3, 5}, {7, 9}, {4, 4}}) {
    for (const Shape& xs : {Shape{4, 32, 4, 4}, Shape{2, 3, 7, 9}, Shape{2, 5, 13, 10}}) {
      check_parity("adaptive avg " + shape_str(xs) + " -> (" + std::to_string(os[0]) + "," + std::to_string(os[1]) + ")",
                   {rnd(xs)}, [os](const std::vector<Tensor>& v) { return adaptive_avg_pool2d(v[0], os); }, kTolF32);
    }
  }
  // ties and the first maximum: a constant plane routes every window's gradient to its first element
  Tensor flat = zeros({1, 1, 4, 4});
  check_parity("max ties", {flat}, [](const std::vector<Tensor>& v) { return max_pool2d(v[0], Pool2dParams{}); },
               kTolF32);
  // bf16 pooling: the same windows on the rounded values
  Tensor xb = rnd({2, 4, 12, 12}).to(DType::bf16);
  Tensor want = max_pool2d(xb.to(DType::f32), P(3, 2, 1));
  Tensor got = max_pool2d(xb.to(kDev), P(3, 2, 1));
  EXPECT_EQ(got.dtype(), DType::bf16);
  EXPECT_CLOSE(got.to(kCPU).to(DType::f32), want, 0.0, "bf16 max pool");
}

// ---------------------------------------------------------------------------------------------- autocast

TEST(CudaAutocast, ProductsRunInBf16WithF32MasterWeights) {
  SIAM_REQUIRE_CUDA();
  Tf32Scope exact(false);
  manual_seed(10);
  auto lin = [](const std::vector<Tensor>& v) {
    AutocastGuard guard(DType::bf16);
    Tensor y = linear(v[0], v[1], v[2]);
    EXPECT_EQ(y.dtype(), DType::f32);
    return y;
  };
  check_parity("autocast linear [64,256] x [96,256]^T + b", {rnd({64, 256}), rnd({96, 256}), rnd({96})}, lin, kTolBf16);
  auto mm = [](const std::vector<Tensor>& v) {
    AutocastGuard guard(DType::bf16);
    return matmul(v[0], v[1]);
  };
  check_parity("autocast matmul [3,40,72] @ [3,72,24]", {rnd({3, 40, 72}), rnd({3, 72, 24})}, mm, kTolBf16, true);
  for (const ConvShape& c : conv_shapes()) {
    const Conv2dParams p = c.p;
    auto conv = [p](const std::vector<Tensor>& v) {
      AutocastGuard guard(DType::bf16);
      return conv2d(v[0], v[1], v[2], p);
    };
    check_parity(std::string("autocast conv2d ") + c.label, {rnd(c.x), rnd(c.w), c.bias ? rnd({c.w[0]}) : Tensor()},
                 conv, kTolBf16);
  }
  // the master weight is untouched and gets an f32 gradient; outside the scope the product is exact again
  Tensor w = device_leaf(rnd({16, 32}));
  const auto before = w.to_vector<float>();
  Tensor x = rnd({8, 32}).to(kDev);
  {
    AutocastGuard guard(DType::bf16);
    linear(x, w).backward(ones({8, 16}).to(kDev));
  }
  EXPECT_EQ(w.to_vector<float>(), before);
  EXPECT_EQ(w.grad().dtype(), DType::f32);
  EXPECT_CLOSE(linear(x, w), linear(x.to(kCPU), w.detach().to(kCPU)), kTolF32, "outside the scope");
}

// The autocast products read bf16-rounded operands: linear, matmul and conv2d (forward and the input and weight
// gradients, whose output gradient is rounded too) against the CPU computation on the rounded values, to f32
// summation-order accuracy for the GEMMs (f32 results) and to the element for the convolution (cuDNN's bf16
// results, rounded once more: at most 1% of the elements one bf16 step apart, where the CPU's f32 sum and the
// device's straddle a rounding boundary). Each also differs from the exact f32 result by kBf16Visible, so a
// path that skips the cast fails.
Tensor bf16r(const Tensor& t) { return t.detach().to(kCPU).to(DType::bf16).to(DType::f32); }

// The fraction of elements where got (on any device) and want differ.
double differing_fraction(const Tensor& got, const Tensor& want) {
  auto g = got.to_vector<float>(), w = want.to_vector<float>();
  if (g.size() != w.size() || w.empty()) return 1.0;
  size_t n = 0;
  for (size_t i = 0; i < w.size(); ++i) n += g[i] != w[i];
  return static_cast<double>(n) / static_cast<double>(w.size());
}

TEST(CudaAutocast, ProductsReadBf16RoundedOperands) {
  SIAM_REQUIRE_CUDA();
  Tf32Scope exact(false);
  manual_seed(12);
  auto check = [](const std::string& what, const Tensor& got, const Tensor& rounded, const Tensor& exact_f32) {
    ASSERT_EQ(got.dtype(), DType::f32) << what;
    EXPECT_CLOSE(got, rounded, kTolF32, what + " against the CPU on bf16-rounded operands");
    EXPECT_GT(norm_err(got, exact_f32), kBf16Visible) << what << ": the exact f32 result, the bf16 cast was skipped";
  };
  {  // linear [64,256] x [96,256]^T + b
    Tensor x = rnd({64, 256}), w = rnd({96, 256}), b = rnd({96}), g = rnd({64, 96});
    Tensor xd = device_leaf(x), wd = device_leaf(w), bd = device_leaf(b);
    Tensor y;
    {
      AutocastGuard guard(DType::bf16);
      y = linear(xd, wd, bd);
    }
    y.backward(g.to(kDev));
    check("linear output", y, linear(bf16r(x), bf16r(w), b), linear(x, w, b));
    check("linear input gradient", xd.grad(), matmul(bf16r(g), bf16r(w)), matmul(g, w));
    check("linear weight gradient", wd.grad(), matmul(bf16r(g).t(), bf16r(x)), matmul(g.t(), x));
    EXPECT_CLOSE(bd.grad(), sum(g, {0}), kTolBf16, "linear bias gradient");
  }
  {  // batched matmul [3,40,72] @ [3,72,24]
    Tensor a = rnd({3, 40, 72}), b = rnd({3, 72, 24}), g = rnd({3, 40, 24});
    Tensor ad = device_leaf(a), bd = device_leaf(b);
    Tensor y;
    {
      AutocastGuard guard(DType::bf16);
      y = matmul(ad, bd);
    }
    y.backward(g.to(kDev));
    check("matmul output", y, matmul(bf16r(a), bf16r(b)), matmul(a, b));
    check("matmul left gradient", ad.grad(), matmul(bf16r(g), bf16r(b).transpose(-1, -2)),
          matmul(g, b.transpose(-1, -2)));
    check("matmul right gradient", bd.grad(), matmul(bf16r(a).transpose(-1, -2), bf16r(g)),
          matmul(a.transpose(-1, -2), g));
  }
  {  // conv2d 16 -> 8, 3x3, padding 1, with bias: bf16 results widened (the bias added in f32)
    Conv2dParams p;
    p.padding = {1, 1};
    Tensor x = rnd({2, 16, 10, 10}), w = rnd({8, 16, 3, 3}), b = rnd({8}), g = rnd({2, 8, 10, 10});
    Tensor xd = device_leaf(x), wd = device_leaf(w), bd = device_leaf(b);
    Tensor y;
    {
      AutocastGuard guard(DType::bf16);
      y = conv2d(xd, wd, bd, p);
    }
    y.backward(g.to(kDev));
    Tensor xr = cpu_leaf(bf16r(x)), wr = cpu_leaf(bf16r(w));
    Tensor yr = conv2d(xr, wr, Tensor(), p);
    yr.backward(bf16r(g));
    Tensor xe = cpu_leaf(x), we = cpu_leaf(w);
    conv2d(xe, we, Tensor(), p).backward(g);
    struct Result {
      const char* what;
      Tensor got, rounded, exact;
    };
    const Result results[] = {
        {"conv2d output", y, add(bf16r(yr), b.reshape({1, 8, 1, 1})), conv2d(x, w, b, p)},
        {"conv2d input gradient", xd.grad(), bf16r(xr.grad()), xe.grad()},
        {"conv2d weight gradient", wd.grad(), bf16r(wr.grad()), we.grad()},
    };
    for (const Result& r : results) {
      ASSERT_EQ(r.got.dtype(), DType::f32) << r.what;
      EXPECT_LE(differing_fraction(r.got, r.rounded), 0.01) << r.what << " against the CPU on bf16-rounded operands";
      EXPECT_CLOSE(r.got, r.rounded, 1e-2, r.what);
      EXPECT_GT(norm_err(r.got, r.exact), kBf16Visible) << r.what << ": the exact f32 result, the cast was skipped";
    }
    EXPECT_CLOSE(bd.grad(), sum(g, {0, 2, 3}), kTolF32, "conv2d bias gradient (from the f32 output gradient)");
  }
}

// ---------------------------------------------------------------------------------------------- whole model

// ResNet-18 (CIFAR stem, width 16) forward + backward in training mode on both devices from the same initial
// weights: the output, every parameter gradient and every running statistic agree.
// One training-mode forward + backward of ResNet-18 (CIFAR stem, width 16) in dtype dt on both devices from the same
// weights: the logits and running statistics within tol, every parameter gradient within tol_grad. Returns the
// CPU model's logits and the device model (for the autocast step below).
struct ResNetStep {
  Tensor x, g, yc;
  std::shared_ptr<models::ResNet> md;
};
ResNetStep resnet_parity(DType dt, double tol, double tol_grad) {
  const models::ResNetConfig cfg{.depth = 18, .width = 16, .stem = models::Stem::cifar, .num_classes = 10};
  manual_seed(11);
  auto mc = models::resnet(cfg);
  manual_seed(11);
  auto md = models::resnet(cfg);
  mc->to(dt);
  md->to(dt);
  md->to(kDev);
  mc->train(), md->train();
  Tensor x = rnd({8, 3, 32, 32}).to(dt), g = rnd({8, 10}).to(dt);
  Tensor yc = (*mc)(x), yd = (*md)(x.to(kDev));
  EXPECT_CLOSE(yd, yc, tol, "logits");
  yc.backward(g);
  yd.backward(g.to(kDev));
  auto pc = mc->named_parameters(), pd = md->named_parameters();
  EXPECT_EQ(pc.size(), pd.size());
  for (size_t i = 0; i < pc.size() && i < pd.size(); ++i) {
    EXPECT_TRUE(pd[i].second.grad().defined()) << pd[i].first;
    if (pd[i].second.grad().defined())
      EXPECT_CLOSE(pd[i].second.grad(), pc[i].second.grad(), tol_grad, "gradient of " + pc[i].first);
  }
  auto bc = mc->named_buffers(), bd = md->named_buffers();
  EXPECT_EQ(bc.size(), bd.size());
  for (size_t i = 0; i < bc.size() && i < bd.size(); ++i)
    if (is_floating(bc[i].second.dtype())) EXPECT_CLOSE(bd[i].second, bc[i].second, tol, bc[i].first);
  return {x, g, yc, md};
}

// In f64 (tolerance 1e-9): where the f32 comparison only bounds rounding, this one checks the math.
TEST(CudaModel, ResNet18ForwardBackwardMatchesCpuInF64) {
  SIAM_REQUIRE_CUDA();
  resnet_parity(DType::f64, 1e-9, 1e-9);
}

TEST(CudaModel, ResNet18ForwardBackwardMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  Tf32Scope exact(false);
  auto [x, g, yc, md] = resnet_parity(DType::f32, kTolModel, kTolModelGrad);
  auto pd = md->named_parameters();
  // and in autocast: the same step within bf16 accuracy
  md->zero_grad();
  {
    AutocastGuard guard(DType::bf16);
    Tensor ya = (*md)(x.to(kDev));
    EXPECT_EQ(ya.dtype(), DType::f32);
    EXPECT_CLOSE(ya, yc, 0.1, "autocast logits");
    ya.backward(g.to(kDev));
  }
  for (auto& [name, p] : pd) EXPECT_EQ(p.grad().dtype(), DType::f32) << name;
}

}  // namespace
}  // namespace siam

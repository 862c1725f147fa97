// Transfers, in-place writes into device views, and an optimizer step on CUDA (label cuda):
//   copies between two devices (cuda:0 -> cuda:1 and back, contiguous and strided sources); with one device
//   they skip (the emulator makes SIAM_EMU_DEVICES of them: run with SIAM_EMU_DEVICES=2);
//   gradients through Tensor::to: a CPU leaf moved to the device, and a device leaf moved to the CPU;
//   fill_ on non-contiguous CUDA views and copy_ into strided CUDA destinations, against the same writes on
//   the CPU (the bytes between the view's elements stay untouched);
//   optim::AdamW stepping CUDA parameters against the same steps on CPU copies.
// Each test skips with a reason where no CUDA device is present.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/optim/adamw.h"
#include "engine/tensor.h"
#include "tests/cuda/cuda_test.h"

namespace siam {
namespace {

TEST(CudaTransfer, CopiesBetweenTwoDevices) {
  SIAM_REQUIRE_CUDA();
  if (cuda_device_count() < 2)
    GTEST_SKIP() << "one CUDA device (" << cuda_device_count() << "); on the emulator run with SIAM_EMU_DEVICES=2";
  const Device d0("cuda:0"), d1("cuda:1");
  Tensor x = randn({37, 53});
  const auto want = x.to_vector<float>();
  Tensor a = x.to(d0);
  Tensor b = a.to(d1);
  ASSERT_TRUE(b.is_cuda());
  EXPECT_EQ(b.device(), d1);
  EXPECT_EQ(b.to(kCPU).to_vector<float>(), want);
  // work on cuda:1 stays there; back to cuda:0 unchanged
  Tensor c = mul(b, 2.0);
  EXPECT_EQ(c.device(), d1);
  EXPECT_EQ(c.to(d0).to(kCPU).to_vector<float>(), mul(x, 2.0).to_vector<float>());
  // strided sources: a transposed view and a step-2 slice at an offset
  EXPECT_EQ(a.t().to(d1).to(kCPU).to_vector<float>(), x.t().to_vector<float>());
  EXPECT_EQ(a.slice(1, 1, 53, 2).to(d1).to(kCPU).to_vector<float>(), x.slice(1, 1, 53, 2).to_vector<float>());
  // f64 and i64 keep their bits
  Tensor xd = randn({1000}).to(DType::f64);
  EXPECT_EQ(xd.to(d0).to(d1).to(kCPU).to_vector<double>(), xd.to_vector<double>());
  Tensor xi = from_vector_i64({-3, 0, 1ll << 40}, {3});
  EXPECT_EQ(xi.to(d1).to(d0).to(kCPU).to_vector<int64_t>(), xi.to_vector<int64_t>());
  // gradients flow back across devices
  Tensor leaf = a.detach();
  leaf.set_requires_grad(true);
  sum(mul(leaf.to(d1), 3.0)).backward();
  ASSERT_TRUE(leaf.grad().defined());
  EXPECT_EQ(leaf.grad().device(), d0);
  EXPECT_EQ(max(abs(sub(leaf.grad().to(kCPU), full({37, 53}, 3.0)))).item(), 0.0);
}

TEST(CudaTransfer, GradientsFlowThroughTo) {
  SIAM_REQUIRE_CUDA();
  manual_seed(21);
  // a CPU leaf used on the device: its gradient arrives on the CPU
  Tensor x = uniform({6, 9}, -1.0, 1.0), w = uniform({6, 9}, -1.0, 1.0);
  Tensor leaf = x.detach();
  leaf.set_requires_grad(true);
  Tensor y = sum(mul(mul(leaf.to(kDev), w.to(kDev)), leaf.to(kDev)));  // sum(w x^2): d/dx = 2 w x
  y.backward();
  ASSERT_TRUE(leaf.grad().defined());
  EXPECT_TRUE(leaf.grad().is_cpu());
  const auto g = leaf.grad().to_vector<float>(), xv = x.to_vector<float>(), wv = w.to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_FLOAT_EQ(g[i], 2.0f * wv[i] * xv[i]) << i;
  // a device leaf used on the CPU (and a strided view of it): its gradient arrives on the device
  Tensor dleaf = x.to(kDev).detach();
  dleaf.set_requires_grad(true);
  Tensor z = sum(mul(dleaf.t().to(kCPU), w.t()));
  z.backward();
  ASSERT_TRUE(dleaf.grad().defined());
  EXPECT_TRUE(dleaf.grad().is_cuda());
  EXPECT_EQ(dleaf.grad().to(kCPU).to_vector<float>(), wv);
  // and through a dtype change on the way
  Tensor l2 = x.detach();
  l2.set_requires_grad(true);
  sum(mul(l2.to(kDev).to(DType::f64), 0.5)).backward();
  ASSERT_TRUE(l2.grad().defined());
  EXPECT_EQ(l2.grad().dtype(), DType::f32);
  EXPECT_EQ(max(abs(sub(l2.grad(), full({6, 9}, 0.5)))).item(), 0.0);
}

// fill_ into non-contiguous device views writes exactly the view's elements, as on the CPU.
TEST(CudaTransfer, FillIntoNonContiguousViews) {
  SIAM_REQUIRE_CUDA();
  Tensor c = randn({6, 8}), d = c.to(kDev);
  c.slice(1, 1, 8, 2).fill_(3.0);  // every other column from 1: step 2, offset 1
  d.slice(1, 1, 8, 2).fill_(3.0);
  c.t().narrow(0, 2, 3).fill_(-1.5);  // a transposed block: columns 2..4
  d.t().narrow(0, 2, 3).fill_(-1.5);
  c.narrow(0, 4, 2).slice(1, 0, 8, 3).fill_(7.0);  // rows 4..5, columns 0, 3, 6
  d.narrow(0, 4, 2).slice(1, 0, 8, 3).fill_(7.0);
  EXPECT_EQ(d.to(kCPU).to_vector<float>(), c.to_vector<float>());
  Tensor c3 = zeros({3, 4, 5}, TensorOptions(DType::f64)), d3 = c3.to(kDev);
  c3.permute({2, 0, 1}).slice(0, 0, 5, 2).fill_(2.25);
  d3.permute({2, 0, 1}).slice(0, 0, 5, 2).fill_(2.25);
  EXPECT_EQ(d3.to(kCPU).to_vector<double>(), c3.to_vector<double>());
}

// copy_ into strided device destinations (from the device, from the CPU, broadcast, with a dtype change).
TEST(CudaTransfer, CopyIntoStridedDestinations) {
  SIAM_REQUIRE_CUDA();
  Tensor c = randn({6, 8}), d = c.to(kDev);
  Tensor src = randn({6, 4}), row = randn({8});
  c.slice(1, 1, 8, 2).copy_(src);
  d.slice(1, 1, 8, 2).copy_(src.to(kDev));  // device -> strided device
  EXPECT_EQ(d.to(kCPU).to_vector<float>(), c.to_vector<float>());
  Tensor block = randn({8, 3});
  c.t().narrow(1, 1, 3).copy_(block);  // (8, 3): rows 1..3 of c, transposed
  d.t().narrow(1, 1, 3).copy_(block);  // CPU -> transposed device view
  EXPECT_EQ(d.to(kCPU).to_vector<float>(), c.to_vector<float>());
  c.narrow(0, 2, 3).copy_(row);  // broadcast over rows
  d.narrow(0, 2, 3).copy_(row.to(kDev));
  EXPECT_EQ(d.to(kCPU).to_vector<float>(), c.to_vector<float>());
  Tensor src64 = randn({6, 3}).to(DType::f64);
  c.slice(1, 0, 8, 3).copy_(src64);  // f64 into an f32 strided view (converts)
  d.slice(1, 0, 8, 3).copy_(src64.to(kDev));
  EXPECT_EQ(d.to(kCPU).to_vector<float>(), c.to_vector<float>());
}

// AdamW on CUDA parameters (weight decay, bias correction over 4 steps) against the same steps on CPU copies;
// the gradients keep each element's sign over the steps, so every element moves (by about 4 lr).
TEST(CudaOptim, AdamWStepMatchesTheCpu) {
  SIAM_REQUIRE_CUDA();
  manual_seed(22);
  const std::vector<Shape> shapes = {{5, 7}, {7}, {3, 2, 4}, {}};
  std::vector<Tensor> pc, pd;
  std::vector<std::vector<float>> initial;
  std::vector<Tensor> signs;
  for (const Shape& s : shapes) {
    signs.push_back(sign(uniform(s, -1.0, 1.0)));
    Tensor p = uniform(s, -1.0, 1.0);
    initial.push_back(p.to_vector<float>());
    pc.push_back(p.detach().clone().detach());
    pd.push_back(p.to(kDev).detach());
    pc.back().set_requires_grad(true);
    pd.back().set_requires_grad(true);
  }
  const optim::AdamWOptions o{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1};
  optim::AdamW oc(pc, o), od(pd, o);
  for (int step = 0; step < 4; ++step) {
    oc.zero_grad();
    od.zero_grad();
    for (size_t i = 0; i < shapes.size(); ++i) {
      Tensor g = mul(uniform(shapes[i], 0.2, 1.0), signs[i]);  // each element keeps its direction over the steps
      sum(mul(pc[i], g)).backward();                           // gradient g
      sum(mul(pd[i], g.to(kDev))).backward();
    }
    oc.step();
    od.step();
    for (size_t i = 0; i < shapes.size(); ++i) {
      ASSERT_TRUE(pd[i].is_cuda());
      const auto a = pc[i].to_vector<float>(), b = pd[i].to(kCPU).to_vector<float>();
      ASSERT_EQ(a.size(), b.size());
      for (size_t j = 0; j < a.size(); ++j)
        ASSERT_NEAR(b[j], a[j], 1e-6 * (1 + std::abs(a[j])))
            << "step " << step << " parameter " << i << " element " << j;
    }
  }
  // the steps moved every parameter (a step that does nothing on both devices would also agree)
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto now = pd[i].to(kCPU).to_vector<float>();
    for (size_t j = 0; j < now.size(); ++j)
      EXPECT_GT(std::abs(now[j] - initial[i][j]), 0.05) << "parameter " << i << " element " << j;
  }
  const auto state = od.named_state();
  ASSERT_FALSE(state.empty());
  for (const auto& [name, t] : state) {
    if (is_floating(t.dtype())) {
      EXPECT_TRUE(t.is_cuda()) << name << " of a CUDA parameter lives on the CPU";
    }
  }
}

}  // namespace
}  // namespace siam

// conv2d's backward is bitwise reproducible for a fixed thread count (training resume relies on it): through the
// op (oneDNN when built with it, else im2col + GEMM), and the oneDNN kernel at the ResNet-18 shapes.
#include <gtest/gtest.h>
#include <omp.h>

#include "engine/core/random.h"
#include "engine/ops/conv.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/conv2d_onednn.h"

namespace siam {
namespace {

TEST(ConvDeterminism, WeightGradientIsBitwiseReproducible) {
  Generator g(5);
  Tensor x = randn({64, 16, 28, 28}, g);
  Tensor w0 = randn({16, 16, 3, 3}, g);
  std::vector<float> first;
  for (int run = 0; run < 6; ++run) {
    Tensor w = w0.detach().clone();
    w.set_requires_grad(true);
    sum(conv2d(x, w, Tensor(), {.padding = {1, 1}})).backward();
    auto gw = w.grad().to_vector<float>();
    if (run == 0)
      first = gw;
    else
      ASSERT_EQ(gw, first) << "run " << run << " with " << omp_get_max_threads() << " threads";
  }
}

TEST(ConvDeterminism, OneDnnGradientsAreBitwiseReproducible) {
  if (!kernels::cpu::conv2d_onednn_available()) GTEST_SKIP() << kernels::cpu::conv2d_onednn_info();
  // {N, C, H, K, k, stride, pad}: 3x3 s1 and s2, small maps, 1x1 s2, the 1-channel stem
  const int64_t shapes[][7] = {{32, 64, 28, 64, 3, 1, 1},  {32, 64, 28, 128, 3, 2, 1},  {32, 256, 7, 256, 3, 1, 1},
                               {32, 512, 4, 512, 3, 1, 1}, {32, 128, 14, 256, 1, 2, 0}, {32, 1, 28, 16, 3, 1, 1}};
  const int saved = omp_get_max_threads();
  for (int threads : {saved, 3}) {
    omp_set_num_threads(threads);
    for (const auto& s : shapes) {
      kernels::cpu::Conv2dGeom g;
      g.N = s[0], g.C = s[1], g.H = g.W = s[2], g.K = s[3], g.R = g.S = s[4], g.sh = g.sw = s[5];
      g.ph = g.pw = s[6];
      g.OH = g.OW = (g.H + 2 * g.ph - g.R) / g.sh + 1;
      Generator gen(9);
      Tensor x = randn({g.N, g.C, g.H, g.W}, gen), w = randn({g.K, g.C, g.R, g.S}, gen);
      Tensor gy = randn({g.N, g.K, g.OH, g.OW}, gen);
      std::vector<float> gw0, gx0, gb0;
      for (int run = 0; run < 3; ++run) {
        Tensor gx = empty(x.shape()), gw = empty(w.shape()), gb = empty({g.K});
        kernels::cpu::conv2d_backward_onednn(g, x.data<float>(), w.data<float>(), gy.data<float>(), gx.data<float>(),
                                             gw.data<float>(), gb.data<float>());
        if (run == 0) {
          gw0 = gw.to_vector<float>(), gx0 = gx.to_vector<float>(), gb0 = gb.to_vector<float>();
          continue;
        }
        ASSERT_EQ(gw.to_vector<float>(), gw0)
            << "weight gradient, " << shape_str(w.shape()) << ", run " << run << ", " << threads << " threads";
        ASSERT_EQ(gx.to_vector<float>(), gx0) << "input gradient, " << shape_str(x.shape()) << ", run " << run;
        ASSERT_EQ(gb.to_vector<float>(), gb0) << "bias gradient, run " << run;
      }
    }
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace siam

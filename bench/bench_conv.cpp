// conv2d CPU benchmarks at the ResNet-18 CIFAR-stem shapes (batch 256, 28x28x1 input, widths 64 and 16).
//   BM_conv2d_cpu             forward through siam::conv2d (the dispatched path: oneDNN when built with it, else
//                             im2col + sgemm), output allocated per call
//   BM_conv2d_bwd_cpu         backward kernel the op dispatches to (conv2d_onednn_preferred): input and weight
//                             gradients (no bias), the training case
//   BM_conv2d_im2col_cpu      forward, im2col + sgemm kernel (kernels::cpu::conv2d_forward) whatever the build
//   BM_conv2d_bwd_im2col_cpu  backward, im2col + sgemm kernel (kernels::cpu::conv2d_backward)
//   BM_conv2d_ref             the plain-loop reference kernel at a small shape (ratio to BM_conv2d_cpu there)
// Args: N, C_in, H (= W), C_out, kernel (square), stride, padding.
// Counters: flops = 2 * N * C_out * OH * OW * C_in * k * k per forward (x2 for backward: gx and gw), as a
// rate (FLOP/s); bytes_peak = workspace the kernel allocates (im2col: per-thread im2col/col2im and staging
// buffers, per-thread weight-gradient accumulators, kernels::cpu::conv2d_*_workspace_bytes; oneDNN: blocked
// copies and scratchpad, kernels::cpu::conv2d_*_onednn_workspace_bytes) + the result tensors.
// Run with OMP_NUM_THREADS set to the thread count being compared (docs/PERF.md).
#include <benchmark/benchmark.h>
#include <omp.h>

#include "engine/core/random.h"
#include "engine/ops/conv.h"
#include "engine/tensor.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_onednn.h"

namespace {

using siam::kernels::cpu::Conv2dGeom;

Conv2dGeom geom(const benchmark::State& st) {
  Conv2dGeom g;
  g.N = st.range(0), g.C = st.range(1), g.H = g.W = st.range(2), g.K = st.range(3), g.R = g.S = st.range(4);
  g.sh = g.sw = st.range(5), g.ph = g.pw = st.range(6);
  g.OH = (g.H + 2 * g.ph - g.R) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - g.S) / g.sw + 1;
  return g;
}

double fwd_flops(const Conv2dGeom& g) { return 2.0 * g.N * g.K * g.OH * g.OW * (g.C / g.groups) * g.R * g.S; }

void set_label(benchmark::State& st, const Conv2dGeom& g) {
  st.SetLabel(std::to_string(g.C) + "->" + std::to_string(g.K) + " " + std::to_string(g.R) + "x" + std::to_string(g.S) +
              " s" + std::to_string(g.sh) + " @" + std::to_string(g.H) + "x" + std::to_string(g.W) + " N" +
              std::to_string(g.N));
}

// Forward: through the op (dispatched) or the im2col kernel directly; the output is allocated per call.
void conv_fwd(benchmark::State& st, bool im2col) {
  const Conv2dGeom g = geom(st);
  siam::Tensor x = siam::uniform({g.N, g.C, g.H, g.W}, -1, 1, siam::DType::f32);
  siam::Tensor w = siam::uniform({g.K, g.C, g.R, g.S}, -1, 1, siam::DType::f32);
  siam::Conv2dParams p;
  p.stride = {g.sh, g.sw};
  p.padding = {g.ph, g.pw};
  for (auto _ : st) {
    if (im2col) {
      siam::Tensor y = siam::empty({g.N, g.K, g.OH, g.OW});
      siam::kernels::cpu::conv2d_forward<float>(g, x.data<float>(), w.data<float>(), nullptr, y.data<float>());
      benchmark::DoNotOptimize(y.raw_data());
    } else {
      siam::Tensor y = siam::conv2d(x, w, siam::Tensor(), p);
      benchmark::DoNotOptimize(y.raw_data());
    }
  }
  const double out_bytes = 4.0 * g.N * g.K * g.OH * g.OW;
  const bool dnnl = !im2col && siam::kernels::cpu::conv2d_onednn_preferred(g);
  st.counters["flops"] = benchmark::Counter(fwd_flops(g), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] =
      static_cast<double>(dnnl ? siam::kernels::cpu::conv2d_forward_onednn_workspace_bytes(g)
                               : siam::kernels::cpu::conv2d_forward_workspace_bytes(g, 4, omp_get_max_threads())) +
      out_bytes;
  set_label(st, g);
}

// Backward (gx and gw, no bias): the kernel siam::conv2d's backward dispatches to, or the im2col kernel.
void conv_bwd(benchmark::State& st, bool im2col) {
  const Conv2dGeom g = geom(st);
  siam::Tensor x = siam::uniform({g.N, g.C, g.H, g.W}, -1, 1, siam::DType::f32);
  siam::Tensor w = siam::uniform({g.K, g.C, g.R, g.S}, -1, 1, siam::DType::f32);
  siam::Tensor gy = siam::uniform({g.N, g.K, g.OH, g.OW}, -1, 1, siam::DType::f32);
  const bool dnnl = !im2col && siam::kernels::cpu::conv2d_onednn_preferred(g);
  auto kernel = dnnl ? siam::kernels::cpu::conv2d_backward_onednn : siam::kernels::cpu::conv2d_backward<float>;
  for (auto _ : st) {
    siam::Tensor gx = siam::empty(x.shape()), gw = siam::empty(w.shape());
    kernel(g, x.data<float>(), w.data<float>(), gy.data<float>(), gx.data<float>(), gw.data<float>(), nullptr);
    benchmark::DoNotOptimize(gx.raw_data());
    benchmark::DoNotOptimize(gw.raw_data());
  }
  const double out_bytes = 4.0 * (x.numel() + w.numel());
  st.counters["flops"] = benchmark::Counter(2.0 * fwd_flops(g), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] =
      static_cast<double>(
          dnnl ? siam::kernels::cpu::conv2d_backward_onednn_workspace_bytes(g, true, true)
               : siam::kernels::cpu::conv2d_backward_workspace_bytes(g, 4, omp_get_max_threads(), true, true)) +
      out_bytes;
  set_label(st, g);
}

void BM_conv2d_cpu(benchmark::State& st) { conv_fwd(st, false); }
void BM_conv2d_bwd_cpu(benchmark::State& st) { conv_bwd(st, false); }
void BM_conv2d_im2col_cpu(benchmark::State& st) { conv_fwd(st, true); }
void BM_conv2d_bwd_im2col_cpu(benchmark::State& st) { conv_bwd(st, true); }

void BM_conv2d_ref(benchmark::State& st) {
  const Conv2dGeom g = geom(st);
  siam::Tensor x = siam::uniform({g.N, g.C, g.H, g.W}, -1, 1, siam::DType::f32);
  siam::Tensor w = siam::uniform({g.K, g.C, g.R, g.S}, -1, 1, siam::DType::f32);
  siam::Tensor y = siam::empty({g.N, g.K, g.OH, g.OW});
  for (auto _ : st) {
    siam::kernels::cpu::conv2d_forward_ref<float>(g, x.data<float>(), w.data<float>(), nullptr, y.data<float>());
    benchmark::DoNotOptimize(y.raw_data());
  }
  st.counters["flops"] = benchmark::Counter(fwd_flops(g), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = 0;
  set_label(st, g);
}

// ResNet-18 CIFAR stem on 28x28x1 input, batch 256: {N, C_in, H, C_out, k, stride, pad}.
void stem_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t wd : {64, 16}) {
    b->Args({256, 1, 28, wd, 3, 1, 1});           // stem conv
    b->Args({256, wd, 28, wd, 3, 1, 1});          // layer1
    b->Args({256, wd, 28, 2 * wd, 3, 2, 1});      // layer2 first conv
    b->Args({256, 2 * wd, 14, 2 * wd, 3, 1, 1});  // layer2
    b->Args({256, 2 * wd, 14, 4 * wd, 3, 2, 1});  // layer3 first conv
    b->Args({256, 4 * wd, 7, 4 * wd, 3, 1, 1});   // layer3
    b->Args({256, 4 * wd, 7, 8 * wd, 3, 2, 1});   // layer4 first conv
    b->Args({256, 8 * wd, 4, 8 * wd, 3, 1, 1});   // layer4
    b->Args({256, wd, 28, 2 * wd, 1, 2, 0});      // downsample 1x1 s2
    b->Args({256, 2 * wd, 14, 4 * wd, 1, 2, 0});
    b->Args({256, 4 * wd, 7, 8 * wd, 1, 2, 0});
  }
}

constexpr int64_t kSmall[] = {4, 16, 14, 16, 3, 1, 1};

}  // namespace

BENCHMARK(BM_conv2d_cpu)
    ->Apply(stem_shapes)
    ->Args({kSmall[0], kSmall[1], kSmall[2], kSmall[3], kSmall[4], kSmall[5], kSmall[6]})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(0.5)
    ->UseRealTime();
BENCHMARK(BM_conv2d_bwd_cpu)->Apply(stem_shapes)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_conv2d_im2col_cpu)->Apply(stem_shapes)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_conv2d_bwd_im2col_cpu)->Apply(stem_shapes)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_conv2d_ref)
    ->Args({kSmall[0], kSmall[1], kSmall[2], kSmall[3], kSmall[4], kSmall[5], kSmall[6]})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(0.5)
    ->UseRealTime();

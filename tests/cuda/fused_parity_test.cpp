// The fused siamese kernels on CUDA against their CPU twins (label cuda): tiled InfoNCE (nt_xent, moco_infonce;
// kernels/cuda/infonce.h; SupCon, CLIP and the gathered form on the same kernels), Barlow Twins and VICReg
// (kernels/cuda/xcorr.h) forward and backward, Sinkhorn (kernels/cuda/sinkhorn.h), normalized MSE
// (kernels/cuda/consistency.h), whitening (engine ops on the device), and the multi-tensor EMA, SGD and LARS
// steps (kernels/cuda/multi_tensor.h), for f32, f64 and bf16 inputs and sizes that are not multiples of the tiles (64-row tiles, 32/128-wide slices of D,
// 32K-element chunks). Errors are normalized: max |cuda - cpu| /
// max(max |cpu|, 1e-3) per tensor. Bounds: f64 1e-10; f32 2e-5 (sums of up to ~2N terms in another order,
// exp through the same fastmath); bf16 inputs 1e-2 (both sides compute in f32 from the same bf16 values; only
// the final bf16 rounding of the gradients may differ by one unit).
// Tests that need a device skip with the reason; the host-and-device helpers they rest on
// (kernels/common/online_lse.h, multi_tensor_math.h, mt_launch_table.h) are checked here on every machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/autocast.h"
#include "engine/core/random.h"
#include "engine/ops/consistency.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/ops/siamese.h"
#include "engine/ops/sinkhorn.h"
#include "engine/ops/whiten.h"
#include "engine/optim/ema.h"
#include "engine/optim/lars.h"
#include "engine/optim/sgd.h"
#include "engine/tensor.h"
#include "kernels/common/mt_launch_table.h"
#include "kernels/common/multi_tensor_math.h"
#include "kernels/common/online_lse.h"
#include "kernels/cpu/multi_tensor.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/infonce.h"
#include "kernels/cuda/stream.h"
#include "tests/cuda/cuda_test.h"

namespace siam {
namespace {

double norm_err(const Tensor& got, const Tensor& want) {
  if (!got.defined() || !want.defined() || got.shape() != want.shape()) return std::nan("");
  auto g = got.to_vector<double>(), w = want.to_vector<double>();
  double diff = 0, scale = 1e-3;
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::isnan(g[i]) || std::isnan(w[i])) return std::nan("");
    diff = std::max(diff, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  return diff / scale;
}

double tol(DType dt) { return dt == DType::f64 ? 1e-10 : dt == DType::f32 ? 2e-5 : 1e-2; }

Tensor rnd(const Shape& s, DType dt, uint64_t seed) {
  Generator gen(seed);
  return randn(s, gen, TensorOptions(DType::f64)).to(dt);
}

// ---- host-and-device helpers, checked on every machine ----

TEST(OnlineLse, MergesAndAddsMatchDirectLogsumexp) {
  std::vector<double> v;
  for (int i = 0; i < 37; ++i) v.push_back(std::sin(i * 1.7) * 30.0);
  double mx = -INFINITY;
  for (double x : v) mx = std::max(mx, x);
  double s = 0;
  for (double x : v) s += std::exp(x - mx);
  const double want = mx + std::log(s);
  // add in groups of 4 (some entries masked), merge partial states in two different groupings
  for (int split : {1, 5, 16}) {
    OnlineLse<double> a = online_lse_empty<double>(), b = online_lse_empty<double>();
    for (size_t i = 0; i < v.size(); i += 4) {
      double vals[4];
      bool ok[4];
      for (int k = 0; k < 4; ++k) {
        ok[k] = i + k < v.size();
        vals[k] = ok[k] ? v[i + k] : 0.0;
      }
      OnlineLse<double>& st = static_cast<int>(i / 4) % split == 0 ? a : b;
      st = online_lse_add(st, vals, ok);
    }
    const OnlineLse<double> m = online_lse_merge(a, b);
    EXPECT_NEAR(m.m + std::log(m.s), want, 1e-12) << "split " << split;
  }
  const OnlineLse<float> e = online_lse_merge(online_lse_empty<float>(), online_lse_empty<float>());
  EXPECT_EQ(e.s, 0.0f);  // empty with empty stays empty, no NaN
  const OnlineLse<float> one = online_lse_merge(online_lse_empty<float>(), OnlineLse<float>{2.0f, 1.0f});
  EXPECT_EQ(one.m, 2.0f);
  EXPECT_EQ(one.s, 1.0f);
}

TEST(MtLaunchTable, EveryChunkOnceInOrderWithinTheLimits) {
  const std::vector<int64_t> numel = {5, 0, 100, 1, 64, 65, 0, 300, 7, 1000, 3};
  for (int max_t : {1, 2, 3, 320})
    for (int max_b : {1, 4, 7, 2048}) {
      const MtLaunchPlan plan = mt_launch_plan(numel.data(), static_cast<int64_t>(numel.size()), 64, max_t, max_b);
      std::vector<int64_t> seen_chunks(numel.size(), 0);
      int64_t global = 0;
      for (const MtLaunch& L : plan.launches) {
        EXPECT_EQ(L.block_base, global);
        EXPECT_LE(static_cast<int>(L.tensors.size()), max_t);
        EXPECT_LE(static_cast<int>(L.block_slot.size()), max_b);
        ASSERT_EQ(L.block_slot.size(), L.block_chunk.size());
        for (size_t b = 0; b < L.block_slot.size(); ++b, ++global) {
          const int32_t t = L.tensors.at(L.block_slot[b]);
          EXPECT_EQ(L.block_chunk[b], seen_chunks[t]) << "chunks of tensor " << t << " out of order";
          EXPECT_EQ(plan.first_block[t] + L.block_chunk[b], global);
          ++seen_chunks[t];
        }
      }
      EXPECT_EQ(global, plan.total_blocks);
      for (size_t t = 0; t < numel.size(); ++t) {
        EXPECT_EQ(seen_chunks[t], (numel[t] + 63) / 64) << "tensor " << t;
        if (numel[t] == 0) {
          EXPECT_EQ(plan.first_block[t], -1);
        }
      }
    }
}

TEST(MtMath, ElementFormulasMatchTheCpuKernels) {
  const int64_t n = 1000;
  std::vector<double> p0(n), g(n), b0(n);
  for (int64_t i = 0; i < n; ++i) {
    p0[i] = std::sin(0.3 * i);
    g[i] = std::cos(0.7 * i);
    b0[i] = 0.1 * std::sin(1.3 * i);
  }
  const kernels::cpu::MtPlan plan = kernels::cpu::mt_plan(&n, 1, 128);
  // EMA
  {
    std::vector<double> t = p0;
    double* tp = t.data();
    const double* op = g.data();
    kernels::cpu::mt_ema<double>(plan, &tp, &op, 0.99, 1.0 - 0.99);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(t[i], mt_ema_elem(p0[i], g[i], 0.99, 1.0 - 0.99), 1e-15);
  }
  // SGD, every flag combination
  for (int mode = 0; mode < 8; ++mode) {
    kernels::cpu::MtSgdArgs a;
    a.lr = 0.1;
    a.weight_decay = (mode & 1) ? 1e-4 : 0;
    a.momentum = (mode & 2) ? 0.9 : 0;
    a.nesterov = (mode & 4) && a.momentum != 0;
    a.dampening = a.nesterov ? 0 : 0.1;
    for (uint8_t init : {uint8_t(0), uint8_t(1)}) {
      std::vector<double> p = p0, b = b0, pe = p0, be = b0;
      double* pp = p.data();
      double* bp = b.data();
      const double* gp = g.data();
      kernels::cpu::mt_sgd<double>(plan, a, &pp, &gp, &bp, &init);
      for (int64_t i = 0; i < n; ++i) {
        mt_sgd_elem(pe[i], g[i], be[i], a.weight_decay, a.momentum, 1.0 - a.dampening, -a.lr, a.momentum != 0,
                    init != 0, a.nesterov);
        ASSERT_NEAR(p[i], pe[i], 1e-14) << "sgd mode " << mode;
        ASSERT_NEAR(b[i], be[i], 1e-14) << "sgd mode " << mode;
      }
    }
  }
  // LARS
  for (int mode = 0; mode < 4; ++mode) {
    kernels::cpu::MtLarsArgs a;
    a.momentum = (mode & 1) ? 0.9 : 0;
    a.nesterov = (mode & 2) && a.momentum != 0;
    const double wd = 1e-4, slr = 0.05;
    std::vector<double> p = p0, v = b0, pe = p0, ve = b0;
    double* pp = p.data();
    double* vp = v.data();
    const double* gp = g.data();
    kernels::cpu::mt_lars<double>(plan, a, &wd, &slr, &pp, &gp, &vp);
    for (int64_t i = 0; i < n; ++i) {
      mt_lars_elem(pe[i], g[i], ve[i], wd, slr, a.momentum, a.momentum != 0, a.nesterov);
      ASSERT_NEAR(p[i], pe[i], 1e-14) << "lars mode " << mode;
      ASSERT_NEAR(v[i], ve[i], 1e-14) << "lars mode " << mode;
    }
  }
  EXPECT_DOUBLE_EQ(lars_scaled_lr(2.0, 4.0, 0.1, 1e-3, false), 0.1 * 1e-3 * 0.5);
  EXPECT_DOUBLE_EQ(lars_scaled_lr(2.0, 4.0, 1e-5, 1e-3, true), 1e-5);
  EXPECT_DOUBLE_EQ(lars_scaled_lr(0.0, 4.0, 0.1, 1e-3, false), 0.1);
}

// ---- InfoNCE ----

struct NceSize {
  int64_t n, d;
};
const NceSize kNceSizes[] = {{1, 1}, {3, 5}, {37, 64}, {32, 128}, {100, 130}, {129, 257}};

// loss and the inputs' gradients of fn on `dev` (inputs copied there, leaves requiring grad)
std::vector<Tensor> run_on(Device dev, const std::vector<Tensor>& in, size_t n_grad,
                           const std::function<Tensor(const std::vector<Tensor>&)>& fn) {
  std::vector<Tensor> xs;
  for (size_t i = 0; i < in.size(); ++i) {
    Tensor x = in[i].to(dev).detach();
    if (i < n_grad) x.set_requires_grad(true);
    xs.push_back(x);
  }
  Tensor loss = fn(xs);
  loss.backward();
  std::vector<Tensor> out = {loss.to(kCPU)};
  for (size_t i = 0; i < n_grad; ++i) out.push_back(xs[i].grad().to(kCPU));
  return out;
}

// " (device [..] vs cpu [..])" for tensors of at most 8 elements (the degenerate sizes), else nothing.
std::string small_values(const Tensor& got, const Tensor& want) {
  if (!got.defined() || !want.defined() || want.numel() > 8 || got.numel() != want.numel()) return "";
  std::ostringstream os;
  os.precision(9);
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  os << " (device [";
  for (size_t i = 0; i < g.size(); ++i) os << (i ? ", " : "") << g[i];
  os << "] vs cpu [";
  for (size_t i = 0; i < w.size(); ++i) os << (i ? ", " : "") << w[i];
  os << "])";
  return os.str();
}

void expect_parity(const std::string& what, DType dt, const std::vector<Tensor>& in, size_t n_grad,
                   const std::function<Tensor(const std::vector<Tensor>&)>& fn, double tolerance = 0) {
  const std::vector<Tensor> cpu = run_on(kCPU, in, n_grad, fn), gpu = run_on(kDev, in, n_grad, fn);
  const double t = tolerance > 0 ? tolerance : tol(dt);
  EXPECT_LE(norm_err(gpu[0], cpu[0]), t) << what << ": loss " << gpu[0].item() << " vs " << cpu[0].item();
  for (size_t i = 1; i < cpu.size(); ++i)
    EXPECT_LE(norm_err(gpu[i], cpu[i]), t) << what << ": gradient of input " << i - 1 << small_values(gpu[i], cpu[i]);
}

// expect_parity for a case whose gradients are exactly 0 in exact arithmetic: both sides then hold rounding noise
// of the gradient's terms (of size term_scale), which a relative comparison cannot take. The losses are compared;
// each side's gradients are bounded by 64 ulp of term_scale.
void expect_parity_zero_grad(const std::string& what, DType dt, const std::vector<Tensor>& in, size_t n_grad,
                             const std::function<Tensor(const std::vector<Tensor>&)>& fn, double term_scale) {
  const std::vector<Tensor> cpu = run_on(kCPU, in, n_grad, fn), gpu = run_on(kDev, in, n_grad, fn);
  EXPECT_LE(norm_err(gpu[0], cpu[0]), tol(dt)) << what << ": loss " << gpu[0].item() << " vs " << cpu[0].item();
  const double bound = 64 * (dt == DType::f64 ? 2.2e-16 : 1.2e-7) * term_scale;
  for (size_t i = 1; i < cpu.size(); ++i)
    for (int side = 0; side < 2; ++side) {
      double worst = 0;
      for (double v : (side == 0 ? gpu : cpu)[i].to_vector<double>()) worst = std::max(worst, std::abs(v));
      EXPECT_LE(worst, bound) << what << ": gradient of input " << i - 1 << ", which must be 0, on the "
                              << (side == 0 ? "device" : "cpu");
    }
}

// Switches kernel2 (bf16 tensor cores) off for a scope: the bf16 cases of the tests below check kernel1 against the
// CPU at the bf16 tolerance; FusedParity.TensorCoreInfonceMatchesCpu checks kernel2.
// Restores the setting it found (off stays off under SIAM_INFONCE_TC=0).
struct TensorCoresOff {
  TensorCoresOff() : was_(cuda::infonce_tensor_cores()) { cuda::set_infonce_tensor_cores(false); }
  ~TensorCoresOff() { cuda::set_infonce_tensor_cores(was_); }
  TensorCoresOff(const TensorCoresOff&) = delete;
  TensorCoresOff& operator=(const TensorCoresOff&) = delete;

 private:
  bool was_;
};

TEST(FusedParity, NtXentMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  TensorCoresOff kernel1;
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : kNceSizes)
      for (bool normalize : {true, false}) {
        const double t = normalize ? 0.1 : 2.0;
        const std::vector<Tensor> in = {rnd({s.n, s.d}, dt, 1 + s.n), rnd({s.n, s.d}, dt, 2 + s.d)};
        expect_parity("nt_xent " + std::string(dtype_name(dt)) + " N " + std::to_string(s.n) + " D " +
                          std::to_string(s.d) + (normalize ? " normalized" : ""),
                      dt, in, 2, [=](const std::vector<Tensor>& v) { return nt_xent(v[0], v[1], t, normalize); });
      }
}

TEST(FusedParity, MocoInfonceMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  TensorCoresOff kernel1;  // bf16 inputs: kernel1 in f32 here, kernel2 in TensorCoreInfonceMatchesCpu
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : kNceSizes)
      for (int64_t k : {int64_t(0), int64_t(7), int64_t(130)}) {
        const std::vector<Tensor> in = {rnd({s.n, s.d}, dt, 3 + s.n), rnd({s.n, s.d}, dt, 4 + s.d),
                                        rnd({k, s.d}, dt, 5 + k)};
        const std::string what = "moco_infonce " + std::string(dtype_name(dt)) + " N " + std::to_string(s.n) +
                                 " D " + std::to_string(s.d) + " K " + std::to_string(k);
        auto moco = [](const std::vector<Tensor>& v) { return moco_infonce(v[0], v[1], v[2], 0.2); };
        if (k > 0 && s.d > 1) {
          expect_parity(what, dt, in, 1, moco);
          continue;
        }
        // K 0: the loss is 0 for every q; D 1: a normalized row is +-1 whatever q is. Terms of size 1/t.
        expect_parity_zero_grad(what, dt, in, 1, moco, 1 / 0.2);
      }
}

// The device memory of fused NT-Xent, forward + backward, stays O(N D): at 2N = 2048 rows of 16 features the
// logits alone would take 16 MiB (and the unfused composition several such matrices); the fused op's
// allocations above the inputs peak at a small multiple of the 2N x D rows: the stacked and the normalized
// rows, their gradient, the norms and lse (3.1 x the rows on the emulator, which runs the same allocator).
TEST(FusedParity, NtXentDeviceMemoryStaysOrderNTimesD) {
  SIAM_REQUIRE_CUDA();
  if constexpr (ops::kCudaBuild) {
    TensorCoresOff kernel1;
    const int64_t n = 1024, d = 16, rows_bytes = 2 * n * d * 4;
    Tensor z1 = rnd({n, d}, DType::f32, 5).to(kDev).set_requires_grad(true);
    Tensor z2 = rnd({n, d}, DType::f32, 6).to(kDev).set_requires_grad(true);
    cuda::synchronize_stream(cuda::current_stream(0));
    const size_t base = cuda::device_alloc_stats(0).allocated_bytes;
    cuda::reset_peak_device_stats(0);
    nt_xent(z1, z2, 0.1).backward();
    const size_t extra = cuda::device_alloc_stats(0).peak_allocated_bytes - base;
    EXPECT_LT(extra, static_cast<size_t>(8 * rows_bytes))
        << "peak " << extra << " bytes above the inputs; the 2N x 2N logits alone: " << 4 * (2 * n) * (2 * n);
    EXPECT_GT(extra, static_cast<size_t>(rows_bytes));  // it measured something: at least the stacked rows
    std::cout << "[ memory   ] fused nt_xent at 2N = " << 2 * n << ", D = " << d << ": " << extra
              << " bytes above the inputs (" << double(extra) / rows_bytes << " x the rows)\n";
  }
}

// Few row blocks over many columns take column ranges (kernels/cuda/infonce.cu, split_plan: 37 queries against
// 2100 or 3000 queue rows are one row block and 2 ranges; nt_xent's and supcon's 2100 rows are 33 row blocks
// and 2 ranges), merged in range order. The same bounds as without ranges, for kernel1 (f32, f64, bf16 inputs) and kernel2; both launches'
// merges are counted by tests/emu/launch_count_test.cu.
TEST(FusedParity, ColumnRangesMatchCpu) {
  SIAM_REQUIRE_CUDA();
  {
    TensorCoresOff kernel1;
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
      for (int64_t k : {int64_t(3000), int64_t(2100)}) {
        const std::vector<Tensor> in = {rnd({37, 64}, dt, 71), rnd({37, 64}, dt, 72), rnd({k, 64}, dt, 73)};
        expect_parity("moco_infonce " + std::string(dtype_name(dt)) + " N 37 D 64 K " + std::to_string(k), dt, in, 1,
                      [](const std::vector<Tensor>& v) { return moco_infonce(v[0], v[1], v[2], 0.2); });
      }
    const std::vector<Tensor> two = {rnd({1050, 16}, DType::f32, 74), rnd({1050, 16}, DType::f32, 75)};
    expect_parity("nt_xent f32 N 1050 D 16", DType::f32, two, 2,
                  [](const std::vector<Tensor>& v) { return nt_xent(v[0], v[1], 0.1); });
    std::vector<int64_t> lab(2100);
    for (int64_t i = 0; i < 2100; ++i) lab[static_cast<size_t>(i)] = (i * 7) % 50;
    const Tensor labels = from_vector_i64(lab, {2100});
    expect_parity("supcon f32 M 2100 D 16", DType::f32, {rnd({2100, 16}, DType::f32, 76)}, 1,
                  [labels](const std::vector<Tensor>& v) { return supcon(v[0], labels, 0.1); });
  }
#if defined(SIAM_WITH_CUDA)
  if (!kernels::cuda::infonce_tc_supported(0)) return;
#endif
  const std::vector<Tensor> in = {rnd({37, 64}, DType::bf16, 77), rnd({37, 64}, DType::bf16, 78),
                                  rnd({3000, 64}, DType::bf16, 79)};
  expect_parity("moco_infonce bf16 (tensor cores) N 37 D 64 K 3000", DType::bf16, in, 1,
                [](const std::vector<Tensor>& v) { return moco_infonce(v[0], v[1], v[2], 0.2); }, 3e-2);
}

// kernel2: the logits and the gradient pass on bf16 tensor cores (kernels/cuda/infonce.h), for bf16 inputs
// (nt_xent) and under autocast (nt_xent and moco_infonce on f32 inputs), against the CPU in f32. Features up to 256
// (padded to 64-multiples: 1, 5, 100 and 200 exercise the zero padding), rows and columns not multiples of the
// 64-row tiles. Bound 3e-2 (normalized, as the others): the normalized rows are rounded to bf16 for the products
// (relative 2^-9 each) and the probabilities to bf16 for P Y; the CPU keeps f32 throughout. A case also checks
// that kernel2 really ran: its loss differs from kernel1's in the last bits.
TEST(FusedParity, TensorCoreInfonceMatchesCpu) {
  SIAM_REQUIRE_CUDA();
#if defined(SIAM_WITH_CUDA)
  if (!kernels::cuda::infonce_tc_supported(0)) GTEST_SKIP() << "bf16 tensor cores need compute capability 8.0+";
#endif
  constexpr double kTolTc = 3e-2;
  const NceSize sizes[] = {{1, 1}, {3, 5}, {37, 64}, {100, 100}, {129, 128}, {70, 200}, {300, 256}};
  // Seeds: the second input's is 1000 + d, so that no size (129 and 128 did) draws both inputs with one seed:
  // equal views make the positive dominate, the loss about 0 and the relative bound meaningless.
  for (const NceSize& s : sizes)
    for (bool normalize : {true, false}) {
      const double t = normalize ? 0.1 : 2.0;
      const std::string what = "N " + std::to_string(s.n) + " D " + std::to_string(s.d) +
                               (normalize ? " normalized" : "");
      auto nce = [=](const std::vector<Tensor>& v) { return nt_xent(v[0], v[1], t, normalize); };
      expect_parity("nt_xent bf16 (tensor cores) " + what, DType::bf16,
                    {rnd({s.n, s.d}, DType::bf16, 81 + s.n), rnd({s.n, s.d}, DType::bf16, 1082 + s.d)}, 2, nce, kTolTc);
      auto nce_autocast = [=](const std::vector<Tensor>& v) {
        AutocastGuard ac(DType::bf16);
        return nt_xent(v[0], v[1], t, normalize);
      };
      // Not at N 1 D 1 unnormalized: two rows, one column each, so the CPU's loss and gradient are exactly 0
      // (lse = the positive), while kernel2 takes lse from the bf16 product and the positive from the f32 rows
      // (about 5e-4 apart): a difference of two roundings, not an error, which the relative bound cannot take.
      if (normalize || s.n > 1)
        expect_parity("nt_xent f32 under autocast " + what, DType::f32,
                      {rnd({s.n, s.d}, DType::f32, 83 + s.n), rnd({s.n, s.d}, DType::f32, 1084 + s.d)}, 2, nce_autocast,
                      kTolTc);
      for (int64_t k : {int64_t(0), int64_t(7), int64_t(130)}) {
        // Unnormalized raw randn rows have logits of size sqrt(D) / t: at t 0.2 their bf16 rounding moves them by
        // 0.1 to 0.5, as much as the gaps between the largest, so the softmax itself changes (up to 15 % in a
        // simulation). t 2.0, as for nt_xent, keeps the test on the kernel's error.
        const double tm = normalize ? 0.2 : 2.0;
        auto moco = [=](const std::vector<Tensor>& v) {
          AutocastGuard ac(DType::bf16);
          return moco_infonce(v[0], v[1], v[2], tm, normalize);
        };
        expect_parity("moco_infonce f32 under autocast K " + std::to_string(k) + " " + what, DType::f32,
                      {rnd({s.n, s.d}, DType::f32, 85 + s.n), rnd({s.n, s.d}, DType::f32, 1086 + s.d),
                       rnd({k, s.d}, DType::f32, 87 + k)},
                      1, moco, kTolTc);
        if (k > 0 && s.d > 1)  // bf16 inputs take kernel2 without a scope (K 0 and D 1: zero gradients, above)
          expect_parity("moco_infonce bf16 (tensor cores) K " + std::to_string(k) + " " + what, DType::bf16,
                        {rnd({s.n, s.d}, DType::bf16, 88 + s.n), rnd({s.n, s.d}, DType::bf16, 1089 + s.d),
                         rnd({k, s.d}, DType::bf16, 90 + k)},
                        1, [=](const std::vector<Tensor>& v) { return moco_infonce(v[0], v[1], v[2], tm, normalize); },
                        kTolTc);
      }
    }
  // the other forms on the same kernels (rows_lse and grad_pass with a per-row mask), bf16 inputs
  for (const NceSize& s : sizes) {
    const std::string what = "N " + std::to_string(s.n) + " D " + std::to_string(s.d);
    std::vector<int64_t> lab(static_cast<size_t>(s.n));
    for (int64_t i = 0; i < s.n; ++i) lab[static_cast<size_t>(i)] = i == 0 ? 1000 : (i * 7) % 5;
    const Tensor labels = from_vector_i64(lab, {s.n});
    expect_parity("supcon bf16 (tensor cores) " + what, DType::bf16, {rnd({s.n, s.d}, DType::bf16, 93 + s.n)}, 1,
                  [=](const std::vector<Tensor>& v) { return supcon(v[0], labels, 0.1, true); }, kTolTc);
    expect_parity("clip bf16 (tensor cores) " + what, DType::bf16,
                  {rnd({s.n, s.d}, DType::bf16, 94 + s.n), rnd({s.n, s.d}, DType::bf16, 1095 + s.d)}, 2,
                  [](const std::vector<Tensor>& v) { return clip_loss(v[0], v[1], 0.07, true); }, kTolTc);
    const int64_t m = 3 * s.n, off = s.n;  // the local rows in the middle of three ranks' rows
    expect_parity("nt_xent_gathered bf16 (tensor cores) " + what, DType::bf16,
                  {rnd({s.n, s.d}, DType::bf16, 96 + s.n), rnd({s.n, s.d}, DType::bf16, 1097 + s.d),
                   rnd({m, s.d}, DType::bf16, 98 + s.n), rnd({m, s.d}, DType::bf16, 1099 + s.d)},
                  4,
                  [=](const std::vector<Tensor>& v) {
                    return nt_xent_gathered(v[0], v[1], v[2], v[3], off, 0.1, true);
                  },
                  kTolTc);
  }
  // kernel2 ran: the same bf16 call with the tensor cores off (kernel1, f32 products) gives another loss
  const std::vector<Tensor> in = {rnd({37, 64}, DType::bf16, 91).to(kDev), rnd({37, 64}, DType::bf16, 92).to(kDev)};
  const double with_tc = nt_xent(in[0], in[1], 0.1, true).item();
  double without;
  {
    TensorCoresOff kernel1;
    without = nt_xent(in[0], in[1], 0.1, true).item();
  }
  EXPECT_NE(with_tc, without) << "bf16 nt_xent did not take the tensor-core path";
  EXPECT_NEAR(with_tc, without, 1e-2 * std::abs(without));
}

// The other InfoNCE forms (kernels/cuda/infonce.h's rows_lse and grad_pass plus engine ops).
TEST(FusedParity, SupconAndMultiViewNtXentMatchCpu) {
  SIAM_REQUIRE_CUDA();
  TensorCoresOff kernel1;
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : kNceSizes)
      for (bool normalize : {true, false}) {
        const double t = normalize ? 0.1 : 2.0;
        // labels with a singleton class (a row without positives) and classes of 2-4 rows
        std::vector<int64_t> lab(static_cast<size_t>(s.n));
        for (int64_t i = 0; i < s.n; ++i) lab[static_cast<size_t>(i)] = i == 0 ? 1000 : (i * 7) % 5;
        const Tensor labels = from_vector_i64(lab, {s.n});
        const std::string what = std::string(dtype_name(dt)) + " N " + std::to_string(s.n) + " D " +
                                 std::to_string(s.d) + (normalize ? " normalized" : "");
        expect_parity("supcon " + what, dt, {rnd({s.n, s.d}, dt, 51 + s.n)}, 1,
                      [=](const std::vector<Tensor>& v) { return supcon(v[0], labels, t, normalize); });
        const std::vector<Tensor> views = {rnd({s.n, s.d}, dt, 52 + s.n), rnd({s.n, s.d}, dt, 53 + s.d),
                                           rnd({s.n, s.d}, dt, 54)};
        expect_parity("nt_xent_multi (3 views) " + what, dt, views, 3,
                      [=](const std::vector<Tensor>& v) { return nt_xent_multi(v, t, normalize); });
      }
}

TEST(FusedParity, ClipMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  TensorCoresOff kernel1;
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : kNceSizes)
      for (bool normalize : {true, false}) {
        const double t = normalize ? 0.07 : 2.0;
        expect_parity("clip_loss " + std::string(dtype_name(dt)) + " N " + std::to_string(s.n) + " D " +
                          std::to_string(s.d) + (normalize ? " normalized" : ""),
                      dt, {rnd({s.n, s.d}, dt, 61 + s.n), rnd({s.n, s.d}, dt, 62 + s.d)}, 2,
                      [=](const std::vector<Tensor>& v) { return clip_loss(v[0], v[1], t, normalize); });
      }
}

TEST(FusedParity, NtXentGatheredMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  TensorCoresOff kernel1;
  // n local rows per view at `offset` among m gathered rows (world sizes 1 to ~4, the rank anywhere)
  struct G {
    int64_t n, m, offset, d;
  };
  const G cases[] = {{1, 1, 0, 1}, {3, 12, 6, 5}, {37, 74, 37, 64}, {50, 200, 100, 130}, {129, 129, 0, 257}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const G& c : cases)
      for (bool normalize : {true, false}) {
        const double t = normalize ? 0.1 : 2.0;
        const std::vector<Tensor> in = {rnd({c.n, c.d}, dt, 71 + c.n), rnd({c.n, c.d}, dt, 72 + c.d),
                                        rnd({c.m, c.d}, dt, 73 + c.m), rnd({c.m, c.d}, dt, 74)};
        const int64_t off = c.offset;
        expect_parity("nt_xent_gathered " + std::string(dtype_name(dt)) + " n " + std::to_string(c.n) + " m " +
                          std::to_string(c.m) + " offset " + std::to_string(off) + (normalize ? " normalized" : ""),
                      dt, in, 4, [=](const std::vector<Tensor>& v) {
                        return nt_xent_gathered(v[0], v[1], v[2], v[3], off, t, normalize);
                      });
      }
}

// ---- W-MSE's batch whitening (engine/ops/whiten.cpp: engine ops on the device, the factor on the host) ----

TEST(FusedParity, WhitenMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  // M x D: one feature, M = D + 1 with shrinkage, ragged sizes, a long batch; Cholesky and Newton-Schulz (1
  // iteration: P_1 only; 5: IterNorm's). Y and the gradient through a fixed random projection of Y. Whitening
  // multiplies rounding by the covariance's condition number (up to about 20 here): f32 bound 2e-4.
  const NceSize sizes[] = {{3, 1}, {6, 5}, {17, 5}, {64, 16}, {129, 33}, {300, 64}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : sizes)
      for (int algo = 0; algo < 3; ++algo) {
        const WhitenAlgo a = algo == 0 ? WhitenAlgo::cholesky : WhitenAlgo::newton_schulz;
        const int iters = algo == 1 ? 1 : 5;
        const double eps = s.n == s.d + 1 ? 0.1 : 0.0;
        const Tensor w = rnd({s.n, s.d}, DType::f32, 61 + s.d);
        const std::string what = std::string("whiten ") + (algo == 0 ? "cholesky" : "newton-schulz") + " iters " +
                                 std::to_string(iters) + " " + dtype_name(dt) + " M " + std::to_string(s.n) + " D " +
                                 std::to_string(s.d);
        expect_parity(
            what, dt, {rnd({s.n, s.d}, dt, 62 + s.n)}, 1,
            [=](const std::vector<Tensor>& v) {
              Tensor y = whiten(v[0], eps, a, iters);
              EXPECT_EQ(y.dtype(), dt);
              EXPECT_EQ(y.device(), v[0].device());
              return sum(mul(y.to(DType::f32), w.to(v[0].device())));
            },
            dt == DType::f32 ? 2e-4 : 0);
      }
}

TEST(FusedParity, WhitenOnTheDeviceNamesACovarianceThatIsNotPositiveDefinite) {
  SIAM_REQUIRE_CUDA();
  Tensor x = rnd({16, 4}, DType::f32, 7);
  x = cat({x.narrow(1, 0, 3), full({16, 1}, 2.0)}, 1).to(kDev);  // a constant feature
  for (WhitenAlgo a : {WhitenAlgo::cholesky, WhitenAlgo::newton_schulz}) {
    std::string e = "<no siam::Error thrown>";
    try {
      whiten(x, 0.0, a);
    } catch (const Error& err) {
      e = err.what();
    }
    EXPECT_NE(e.find("whiten"), std::string::npos) << e;
    EXPECT_NE(e.find("not positive definite"), std::string::npos) << e;
    EXPECT_NE(e.find("pivot 3"), std::string::npos) << e;
  }
}

// ---- BYOL / SimSiam's normalized MSE (kernels/cuda/consistency.h) ----

TEST(FusedParity, NormalizedMseMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  // rows per warp and grid edges (1, 7, 300 rows), D below, at and above a warp's 32 lanes; a zero row (the
  // norm clamp's branch) in the last case.
  const NceSize sizes[] = {{1, 1}, {7, 31}, {37, 32}, {300, 33}, {129, 257}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : sizes) {
      std::vector<Tensor> in = {rnd({s.n, s.d}, dt, 21 + s.n), rnd({s.n, s.d}, dt, 22 + s.d)};
      if (s.n == 129) in[0] = cat({zeros({1, s.d}, dt), in[0].narrow(0, 1, s.n - 1)}, 0);
      const std::string what = "normalized_mse " + std::string(dtype_name(dt)) + " N " + std::to_string(s.n) +
                               " D " + std::to_string(s.d);
      auto both = [](const std::vector<Tensor>& v) { return normalized_mse(v[0], v[1]); };
      // the stop-gradient form of BYOL / SimSiam: z detached
      auto detached = [](const std::vector<Tensor>& v) { return normalized_mse(v[0], v[1].detach()); };
      if (s.d == 1) {  // normalized 1-D rows are +-1: the gradients are 0 (terms of size 2 / N)
        expect_parity_zero_grad(what, dt, in, 2, both, 2.0);
        expect_parity_zero_grad(what + " (z detached)", dt, in, 1, detached, 2.0);
        continue;
      }
      expect_parity(what, dt, in, 2, both);
      expect_parity(what + " (z detached)", dt, in, 1, detached);
    }
}

// ---- Barlow Twins cross-correlation (kernels/cuda/xcorr.h) ----

TEST(FusedParity, BarlowTwinsMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  // N x D: one row group short of a block, ragged column blocks (not multiples of 32), D > N (C of rank < D)
  // and a batch much longer than the 8 row groups.
  const NceSize sizes[] = {{2, 1}, {7, 3}, {37, 64}, {32, 130}, {300, 33}, {129, 257}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : sizes)
      for (double lambda : {5e-3, 0.0, 1.0}) {
        const std::vector<Tensor> in = {rnd({s.n, s.d}, dt, 11 + s.n), rnd({s.n, s.d}, dt, 12 + s.d)};
        expect_parity("barlow_twins_loss " + std::string(dtype_name(dt)) + " N " + std::to_string(s.n) + " D " +
                          std::to_string(s.d) + " lambda " + std::to_string(lambda),
                      dt, in, 2,
                      [=](const std::vector<Tensor>& v) { return barlow_twins_loss(v[0], v[1], lambda); });
      }
}

// ---- VICReg's three terms (kernels/cuda/xcorr.h) ----

TEST(FusedParity, VicregMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  // N < D (the Gram form), N >= D (the covariance form), ragged column blocks, a long batch; the weighted sum
  // checks the three gradients together, each term alone the paths where the other upstream gradients are 0.
  // z2 = 0.3 z1 + noise with scale 0.5 puts some features below std 1 and some above (the hinge's both sides).
  const NceSize sizes[] = {{2, 1}, {7, 3}, {37, 64}, {32, 130}, {300, 33}, {129, 257}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : sizes) {
      const DType wide = dt == DType::f64 ? DType::f64 : DType::f32;  // bf16 is built in f32, then rounded
      Tensor z1 = rnd({s.n, s.d}, wide, 31 + s.n);
      Tensor z2 = add(mul(z1, 0.3), mul(rnd({s.n, s.d}, wide, 32 + s.d), 0.5)).to(dt);
      z1 = z1.to(dt);
      const std::vector<Tensor> in = {z1, z2};
      const std::string what = "vicreg_terms " + std::string(dtype_name(dt)) + " N " + std::to_string(s.n) + " D " +
                               std::to_string(s.d);
      expect_parity(what + " 25 inv + 25 var + cov", dt, in, 2, [](const std::vector<Tensor>& v) {
        VicregTerms t = vicreg_terms(v[0], v[1]);
        return add(add(mul(t.invariance, 25.0), mul(t.variance, 25.0)), t.covariance);
      });
      for (int term = 0; term < 3; ++term)
        expect_parity(what + " term " + std::to_string(term), dt, in, 2, [term](const std::vector<Tensor>& v) {
          VicregTerms t = vicreg_terms(v[0], v[1]);
          return term == 0 ? t.invariance : term == 1 ? t.variance : t.covariance;
        });
      // one side detached (VICReg's gradients reach both branches; a frozen branch must still work)
      expect_parity(what + " z2 detached", dt, in, 1, [](const std::vector<Tensor>& v) {
        VicregTerms t = vicreg_terms(v[0], v[1].detach());
        return add(add(t.invariance, t.variance), t.covariance);
      });
    }
}

// The distributed forms of Barlow Twins and VICReg (engine/ops/batch_stat_hooks.h: engine ops on the device)
// with one rank's identity all-reduce, against the CPU.
TEST(FusedParity, BatchStatHooksMatchCpu) {
  SIAM_REQUIRE_CUDA();
  const NceSize sizes[] = {{2, 1}, {37, 64}, {129, 33}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : sizes) {
      BatchStatHooks h;
      h.all_reduce_sum = [](const Tensor& t) { return t; };
      h.global_batch = s.n;
      const std::string what = std::string(dtype_name(dt)) + " N " + std::to_string(s.n) + " D " + std::to_string(s.d);
      const std::vector<Tensor> in = {rnd({s.n, s.d}, dt, 51 + s.n), rnd({s.n, s.d}, dt, 52 + s.d)};
      expect_parity("barlow_twins_loss (hooks) " + what, dt, in, 2,
                    [h](const std::vector<Tensor>& v) { return barlow_twins_loss(v[0], v[1], 5e-3, 1e-5, h); },
                    dt == DType::f32 ? 1e-4 : 0);
      expect_parity("vicreg_terms (hooks) " + what, dt, in, 2, [h](const std::vector<Tensor>& v) {
        VicregTerms t = vicreg_terms(v[0], v[1], 1e-4, h);
        return add(add(mul(t.invariance, 25.0), mul(t.variance, 25.0)), t.covariance);
      });
    }
}

// ---- SwAV's Sinkhorn-Knopp (kernels/cuda/sinkhorn.h) ----

TEST(FusedParity, SinkhornMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  // B x K: one sample, ragged column blocks, K past a warp row (1024: the block-per-row form), B much longer
  // than the 8 sample groups; scores as SwAV's (cosines in [-1, 1]), eps 0.05 and a small eps in the log form.
  const NceSize sizes[] = {{1, 1}, {7, 3}, {37, 64}, {256, 100}, {300, 33}, {64, 1500}, {1000, 300}};
  for (DType dt : {DType::f32, DType::f64, DType::bf16})
    for (const NceSize& s : sizes)
      for (bool log_domain : {false, true})
        for (int iters : {1, 3}) {
          const double eps = log_domain ? 0.01 : 0.05;
          Tensor scores = tanh(rnd({s.n, s.d}, dt == DType::bf16 ? DType::f32 : dt, 41 + s.n + s.d)).to(dt);
          Tensor cpu = sinkhorn(scores, eps, iters, log_domain);
          Tensor gpu = sinkhorn(scores.to(kDev), eps, iters, log_domain).to(kCPU);
          EXPECT_EQ(gpu.dtype(), dt == DType::bf16 ? DType::f32 : dt);  // bf16 scores give f32 codes
          EXPECT_LE(norm_err(gpu, cpu), tol(dt))
              << "sinkhorn " << dtype_name(dt) << " B " << s.n << " K " << s.d << (log_domain ? " log" : " plain")
              << " iters " << iters;
        }
}

// The distributed form (an all-reduce hook) on CUDA scores makes the round trip to the CPU path: the same codes.
TEST(FusedParity, SinkhornWithHooksOnCudaScoresMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  Tensor scores = tanh(rnd({48, 20}, DType::f32, 5));
  int calls = 0;
  SinkhornHooks hooks;
  hooks.all_reduce_sum = [&calls](Tensor&) { ++calls; };  // one rank: the sum is the tensor itself
  Tensor cpu = sinkhorn(scores, 0.05, 3, false);
  Tensor gpu = sinkhorn(scores.to(kDev), 0.05, 3, false, &hooks);
  EXPECT_TRUE(gpu.device().is_cuda());
  EXPECT_EQ(calls, 4);  // [2] once, then [K] per iteration
  EXPECT_LE(norm_err(gpu.to(kCPU), cpu), tol(DType::f32));
}

// ---- stopgrad on the device ----

// detach() of a CUDA tensor is a zero-copy view too (tests/unit/stopgrad_test.cpp on the CPU): same storage and
// data pointer, no request to the device allocator, no launch; BYOL's stop-gradient on a device branch passes
// no gradient and normalized_mse's gradient to the online side equals that against a constant target.
TEST(FusedParity, DetachOnTheDeviceIsAZeroCopyView) {
  SIAM_REQUIRE_CUDA();
  if constexpr (ops::kCudaBuild) {
    Tensor x = rnd({64, 32}, DType::f32, 8).to(kDev).set_requires_grad(true);
    Tensor y = mul(x, 2.0);
    for (const Tensor& t : {x, y, y.t()}) {
      cuda::synchronize_stream(cuda::current_stream(0));
      const size_t requests = cuda::device_alloc_stats(0).requests;
      Tensor d = t.detach();
      EXPECT_EQ(cuda::device_alloc_stats(0).requests, requests);
      EXPECT_EQ(d.raw_data(), t.raw_data());
      EXPECT_EQ(d.storage().get(), t.storage().get());
      EXPECT_EQ(d.strides(), t.strides());
      EXPECT_TRUE(d.is_cuda());
      EXPECT_FALSE(d.requires_grad());
    }
    Tensor p = rnd({16, 8}, DType::f32, 9).to(kDev).set_requires_grad(true);
    Tensor z = mul(x.narrow(0, 0, 16).narrow(1, 0, 8), 3.0);  // the "target" branch, with history back to x
    normalized_mse(p, z.detach()).backward();
    EXPECT_FALSE(x.grad().defined()) << "a gradient crossed detach on the device";
    Tensor pc = p.detach().to(kCPU).set_requires_grad(true);
    normalized_mse(pc, z.detach().to(kCPU)).backward();
    EXPECT_LE(norm_err(p.grad().to(kCPU), pc.grad()), tol(DType::f32));
  }
}

// ---- multi-tensor EMA, SGD, LARS ----

// Sizes around the 32K chunk, the float4 path (multiples of 4) and its tail, and tiny tensors.
const std::vector<Shape> kParamShapes = {{3}, {64, 3, 3}, {70001}, {1}, {32768}, {129, 257}, {5}};

std::vector<Tensor> params(DType dt, uint64_t seed) {
  std::vector<Tensor> ps;
  for (size_t i = 0; i < kParamShapes.size(); ++i) ps.push_back(rnd(kParamShapes[i], dt, seed + i));
  return ps;
}
std::vector<Tensor> to_dev(const std::vector<Tensor>& ts, Device d) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(t.to(d).contiguous());
  return out;
}

TEST(FusedParity, EmaUpdateMatchesCpu) {
  SIAM_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    std::vector<Tensor> tc = params(dt, 10), oc = params(dt, 20);
    tc.push_back(from_vector_i64({3}, {1}));  // BN's num_batches_tracked: copied
    oc.push_back(from_vector_i64({9}, {1}));
    std::vector<Tensor> tg = to_dev(tc, kDev), og = to_dev(oc, kDev);
    for (double m : {0.996, 0.5}) {
      optim::ema_update(tc, oc, m);
      optim::ema_update(tg, og, m);
    }
    for (size_t i = 0; i < tc.size(); ++i) EXPECT_LE(norm_err(tg[i].to(kCPU), tc[i]), tol(dt)) << "tensor " << i;
  }
}

template <class Opt, class Options>
void optimizer_parity(const Options& o, DType dt, const std::string& what, bool exclude = false) {
  std::vector<Tensor> pc = params(dt, 30), pg = to_dev(pc, kDev);
  for (size_t i = 0; i < pc.size(); ++i) {
    pc[i].set_requires_grad(true);
    pg[i].set_requires_grad(true);
  }
  auto specs = [&](const std::vector<Tensor>& ps) {
    optim::ParamGroupSpec s;
    s.params = ps;
    s.lars_exclude = exclude;
    return std::vector<optim::ParamGroupSpec>{s};
  };
  Opt cpu(specs(pc), o), gpu(specs(pg), o);
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < pc.size(); ++i) {
      Tensor g = rnd(pc[i].shape(), dt, 100 * step + i);
      pc[i].set_grad(g);
      pg[i].set_grad(g.to(kDev));
    }
    cpu.step();
    gpu.step();
  }
  for (size_t i = 0; i < pc.size(); ++i) EXPECT_LE(norm_err(pg[i].to(kCPU), pc[i]), 10 * tol(dt)) << what << " tensor " << i;
}

TEST(FusedParity, SgdAndLarsStepsMatchCpu) {
  SIAM_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int mode = 0; mode < 3; ++mode) {
      optim::SGDOptions o;
      o.lr = 0.05;
      o.weight_decay = 1e-4;
      o.momentum = mode == 0 ? 0.0 : 0.9;
      o.nesterov = mode == 2;
      optimizer_parity<optim::SGD>(o, dt, "sgd mode " + std::to_string(mode));
    }
    for (int mode = 0; mode < 4; ++mode) {
      optim::LARSOptions o;
      o.lr = 0.3;
      o.weight_decay = 1e-6;
      o.momentum = mode == 0 ? 0.0 : 0.9;
      o.nesterov = mode == 2;
      o.clip_lr = mode == 3;
      optimizer_parity<optim::LARS>(o, dt, "lars mode " + std::to_string(mode));
    }
    optim::LARSOptions o;
    optimizer_parity<optim::LARS>(o, dt, "lars excluded", /*exclude=*/true);
  }
}

}  // namespace
}  // namespace siam

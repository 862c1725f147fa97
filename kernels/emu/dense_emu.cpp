// The emulator's stand-ins for what siam takes from NVIDIA's libraries (see kernels/emu/simt.h): cuBLASLt's GEMM
// (kernels/cuda/gemm.h), cuDNN's convolution and batch norm (cudnn_conv.h, cudnn_norm_pool.h) and NCCL
// (nccl.h). GEMM and convolution run the CPU kernels on the emulated device memory (bf16 through f32, as the
// libraries accumulate; f32 operands rounded to TF32 when the caller allows TF32); batch norm is written out
// here. They are references, not the code under test: what the emulator tests is siam's own kernels and the
// engine code around these calls.
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/core/error.h"
#include "kernels/common/half.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cuda/cudnn_conv.h"
#include "kernels/cuda/cudnn_norm_pool.h"
#include "kernels/cuda/gemm.h"
#if SIAM_WITH_NCCL
#include "kernels/cuda/nccl.h"
#endif

namespace siam::kernels::cuda {

namespace {

// A dense operand as float or double values.
template <class T> std::vector<T> load(DenseType t, const void* p, size_t n) {
  std::vector<T> out(n);
  if (!p || n == 0) return out;
  switch (t) {
    case DenseType::f32:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<const float*>(p)[i]);
      break;
    case DenseType::f64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<const double*>(p)[i]);
      break;
    case DenseType::bf16:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(bf16_bits_to_f32(static_cast<const uint16_t*>(p)[i]));
      break;
  }
  return out;
}
template <class T> void store(DenseType t, void* p, size_t i, T v) {
  if (!p) return;  // an output the caller does not want
  switch (t) {
    case DenseType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DenseType::f64: static_cast<double*>(p)[i] = static_cast<double>(v); break;
    case DenseType::bf16: static_cast<uint16_t*>(p)[i] = f32_to_bf16_bits(static_cast<float>(v)); break;
  }
}
template <class T> void store_all(DenseType t, void* p, const std::vector<T>& v) {
  for (size_t i = 0; i < v.size(); ++i) store(t, p, i, v[i]);
}

// TF32 as the tensor cores read an f32 operand when TF32 is allowed: the top 10 mantissa bits kept, rounded to
// nearest even (inf and NaN pass unchanged). Applied to the f32 operands of the GEMM and convolution stand-ins
// so that a TF32 setting the engine passes changes the result here as it does on a GPU.
float tf32_round(float f) {
  uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) return f;
  u += 0xfffu + ((u >> 13) & 1u);
  u &= 0xffffe000u;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
template <class T> void round_tf32(std::vector<T>& v, DenseType t, bool allow_tf32) {
  if constexpr (std::is_same_v<T, float>)
    if (t == DenseType::f32 && allow_tf32)
      for (auto& x : v) x = tf32_round(x);
}

DenseCacheStats g_gemm_stats, g_conv_stats;

template <class T> void gemm_as(const GemmArgs& p) {
  const size_t es = dense_type_size(p.ab_type);
  // rows x cols of the stored A and B (before op)
  const int64_t ar = p.ta ? p.k : p.m, ac = p.ta ? p.m : p.k;
  const int64_t br = p.tb ? p.n : p.k, bc = p.tb ? p.k : p.n;
  const bool tf32 = std::is_same_v<T, float> && p.ab_type == DenseType::f32 && p.allow_tf32;
  for (int64_t it = 0; it < p.batch; ++it) {
    const auto* a = static_cast<const char*>(p.a) + static_cast<size_t>(it * p.batch_stride_a) * es;
    const auto* b = static_cast<const char*>(p.b) + static_cast<size_t>(it * p.batch_stride_b) * es;
    const size_t doff = static_cast<size_t>(it * p.batch_stride_d);
    // Dense copies with the caller's row strides squeezed out.
    std::vector<T> A(static_cast<size_t>(ar * ac)), B(static_cast<size_t>(br * bc));
    for (int64_t r = 0; r < ar; ++r) {
      auto row = load<T>(p.ab_type, a + static_cast<size_t>(r * p.lda) * es, static_cast<size_t>(ac));
      std::copy(row.begin(), row.end(), A.begin() + r * ac);
    }
    for (int64_t r = 0; r < br; ++r) {
      auto row = load<T>(p.ab_type, b + static_cast<size_t>(r * p.ldb) * es, static_cast<size_t>(bc));
      std::copy(row.begin(), row.end(), B.begin() + r * bc);
    }
    std::vector<T> D(static_cast<size_t>(p.m * p.n), T(0));
    if (p.m > 0 && p.n > 0 && p.k > 0) {
      // the operands as the product reads them: TF32 copies when allowed (bias_grad below sums A as stored)
      std::vector<T> At, Bt;
      if (tf32) {
        At = A, Bt = B;
        round_tf32(At, p.ab_type, true);
        round_tf32(Bt, p.ab_type, true);
      }
      cpu::gemm<T>(p.ta, p.tb, p.m, p.n, p.k, T(1), tf32 ? At.data() : A.data(), ac, tf32 ? Bt.data() : B.data(), bc,
                   T(0), D.data(), p.n);
    }
    const size_t des = dense_type_size(p.d_type);
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        const size_t at = doff + static_cast<size_t>(i * p.ldd + j);
        T v = static_cast<T>(p.alpha) * D[static_cast<size_t>(i * p.n + j)];
        if (p.beta != 0.0) v += static_cast<T>(p.beta) * load<T>(p.d_type, static_cast<char*>(p.d) + at * des, 1)[0];
        if (p.epilogue == GemmEpilogue::bias || p.epilogue == GemmEpilogue::bias_relu)
          v += load<T>(p.d_type, static_cast<char*>(p.bias) + static_cast<size_t>(j) * des, 1)[0];
        if (p.epilogue == GemmEpilogue::bias_relu && !(v > T(0))) v = T(0);
        store(p.d_type, p.d, at, v);
      }
    if (p.epilogue == GemmEpilogue::bias_grad)
      for (int64_t i = 0; i < p.m; ++i) {
        T s = 0;
        for (int64_t kk = 0; kk < p.k; ++kk)
          s += p.ta ? A[static_cast<size_t>(kk * ac + i)] : A[static_cast<size_t>(i * ac + kk)];
        store(p.d_type, p.bias, static_cast<size_t>(i), s);
      }
  }
}

template <class F> void by_type(DenseType t, F&& f) {
  if (t == DenseType::f64)
    f(double{});
  else
    f(float{});
}

}  // namespace

bool gemm(const GemmArgs& p, const ScratchFn&) {
  SIAM_CHECK(p.m >= 0 && p.n >= 0 && p.k >= 0 && p.batch >= 1, "cuda gemm: bad sizes");
  SIAM_CHECK(p.epilogue == GemmEpilogue::none || (p.batch == 1 && p.bias != nullptr),
             "cuda gemm: an epilogue needs batch 1 and a bias pointer (batch=", p.batch, ")");
  ++g_gemm_stats.lookups;
  by_type(p.ab_type, [&](auto z) { gemm_as<decltype(z)>(p); });
  return true;
}
DenseCacheStats gemm_cache_stats() { return g_gemm_stats; }
void gemm_cache_clear() { g_gemm_stats = {}; }
void dense_synchronize(int) {}

// ---- convolution ----

void conv2d_forward(const Conv2dGeom& g, DenseType t, bool allow_tf32, int, const void* x, const void* w, const void* b,
                    void* y, const ScratchFn&) {
  ++g_conv_stats.lookups;
  by_type(t, [&](auto z) {
    using T = decltype(z);
    auto X = load<T>(t, x, static_cast<size_t>(g.N * g.C * g.H * g.W));
    auto Wt = load<T>(t, w, static_cast<size_t>(g.K * (g.C / g.groups) * g.R * g.S));
    auto B = load<T>(t, b, b ? static_cast<size_t>(g.K) : 0);
    round_tf32(X, t, allow_tf32);
    round_tf32(Wt, t, allow_tf32);
    std::vector<T> Y(static_cast<size_t>(g.N * g.K * g.OH * g.OW));
    cpu::conv2d_forward<T>(g, X.data(), Wt.data(), b ? B.data() : nullptr, Y.data());
    store_all(t, y, Y);
  });
}
void conv2d_backward_data(const Conv2dGeom& g, DenseType t, bool allow_tf32, int, const void* w, const void* gy,
                          void* gx, const ScratchFn&) {
  ++g_conv_stats.lookups;
  by_type(t, [&](auto z) {
    using T = decltype(z);
    auto Wt = load<T>(t, w, static_cast<size_t>(g.K * (g.C / g.groups) * g.R * g.S));
    auto GY = load<T>(t, gy, static_cast<size_t>(g.N * g.K * g.OH * g.OW));
    round_tf32(Wt, t, allow_tf32);
    round_tf32(GY, t, allow_tf32);
    std::vector<T> X(static_cast<size_t>(g.N * g.C * g.H * g.W)), GX(X.size());
    cpu::conv2d_backward<T>(g, X.data(), Wt.data(), GY.data(), GX.data(), nullptr, nullptr);
    store_all(t, gx, GX);
  });
}
void conv2d_backward_filter(const Conv2dGeom& g, DenseType t, bool allow_tf32, int, const void* x, const void* gy,
                            void* gw, const ScratchFn&) {
  ++g_conv_stats.lookups;
  by_type(t, [&](auto z) {
    using T = decltype(z);
    auto X = load<T>(t, x, static_cast<size_t>(g.N * g.C * g.H * g.W));
    auto GY = load<T>(t, gy, static_cast<size_t>(g.N * g.K * g.OH * g.OW));
    round_tf32(X, t, allow_tf32);
    round_tf32(GY, t, allow_tf32);
    std::vector<T> Wt(static_cast<size_t>(g.K * (g.C / g.groups) * g.R * g.S)), GW(Wt.size());
    cpu::conv2d_backward<T>(g, X.data(), Wt.data(), GY.data(), nullptr, GW.data(), nullptr);
    store_all(t, gw, GW);
  });
}
void conv2d_backward_bias(const Conv2dGeom& g, DenseType t, int, const void* gy, DenseType gb_type, void* gb) {
  auto GY = load<double>(t, gy, static_cast<size_t>(g.N * g.K * g.OH * g.OW));
  const int64_t L = g.OH * g.OW;
  for (int64_t k = 0; k < g.K; ++k) {
    double s = 0;
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t l = 0; l < L; ++l) s += GY[static_cast<size_t>((n * g.K + k) * L + l)];
    store(gb_type, gb, static_cast<size_t>(k), s);
  }
}
DenseCacheStats conv_cache_stats() { return g_conv_stats; }
void conv_cache_clear() { g_conv_stats = {}; }

// ---- batch norm (cuDNN's contract in cudnn_norm_pool.h; statistics in double) ----

namespace {
DenseType param_type(DenseType t) { return t == DenseType::f64 ? DenseType::f64 : DenseType::f32; }
double param(DenseType t, const void* p, int64_t c, double absent) {
  return p ? load<double>(param_type(t), static_cast<const char*>(p) + c * dense_type_size(param_type(t)), 1)[0]
           : absent;
}
}  // namespace

void batch_norm_train_forward(int64_t N, int64_t C, int64_t L, DenseType t, int, const void* x, const void* w,
                              const void* b, double momentum, double eps, void* running_mean, void* running_var,
                              void* y, void* save_mean, void* save_invstd, const ScratchFn&) {
  check_bn_type(t);
  const auto X = load<double>(t, x, static_cast<size_t>(N * C * L));
  const DenseType pt = param_type(t);
  const double M = static_cast<double>(N * L);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0, ss = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) s += X[static_cast<size_t>((n * C + c) * L + l)];
    const double mean = s / M;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const double d = X[static_cast<size_t>((n * C + c) * L + l)] - mean;
        ss += d * d;
      }
    const double var = ss / M, invstd = 1.0 / std::sqrt(var + eps);
    const double wc = param(t, w, c, 1.0), bc = param(t, b, c, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const size_t i = static_cast<size_t>((n * C + c) * L + l);
        store(t, y, i, (X[i] - mean) * invstd * wc + bc);
      }
    store(pt, save_mean, static_cast<size_t>(c), mean);
    store(pt, save_invstd, static_cast<size_t>(c), invstd);
    if (running_mean && running_var) {
      const double unbiased = M > 1 ? ss / (M - 1) : var;
      store(pt, running_mean, static_cast<size_t>(c), (1 - momentum) * param(t, running_mean, c, 0) + momentum * mean);
      store(pt, running_var, static_cast<size_t>(c),
            (1 - momentum) * param(t, running_var, c, 0) + momentum * unbiased);
    }
  }
}

void batch_norm_eval_forward(int64_t N, int64_t C, int64_t L, DenseType t, int, const void* x, const void* w,
                             const void* b, const void* running_mean, const void* running_var, double eps, void* y,
                             const ScratchFn&) {
  check_bn_type(t);
  const auto X = load<double>(t, x, static_cast<size_t>(N * C * L));
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(param(t, running_var, c, 1) + eps), mean = param(t, running_mean, c, 0);
    const double wc = param(t, w, c, 1.0), bc = param(t, b, c, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const size_t i = static_cast<size_t>((n * C + c) * L + l);
        store(t, y, i, (X[i] - mean) * invstd * wc + bc);
      }
  }
}

void batch_norm_train_backward(int64_t N, int64_t C, int64_t L, DenseType t, int, const void* x, const void* gy,
                               const void* w, const void* save_mean, const void* save_invstd, double, void* gx,
                               void* gw, void* gb, const ScratchFn&) {
  check_bn_type(t);
  const auto X = load<double>(t, x, static_cast<size_t>(N * C * L));
  const auto G = load<double>(t, gy, static_cast<size_t>(N * C * L));
  const DenseType pt = param_type(t);
  const double M = static_cast<double>(N * L);
  for (int64_t c = 0; c < C; ++c) {
    const double mean = param(t, save_mean, c, 0), invstd = param(t, save_invstd, c, 1), wc = param(t, w, c, 1.0);
    double sg = 0, sgx = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const size_t i = static_cast<size_t>((n * C + c) * L + l);
        sg += G[i];
        sgx += G[i] * (X[i] - mean) * invstd;
      }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const size_t i = static_cast<size_t>((n * C + c) * L + l);
        const double xh = (X[i] - mean) * invstd;
        store(t, gx, i, wc * invstd / M * (M * G[i] - sg - xh * sgx));
      }
    store(pt, gw, static_cast<size_t>(c), sgx);
    store(pt, gb, static_cast<size_t>(c), sg);
  }
}

}  // namespace siam::kernels::cuda

#if SIAM_WITH_NCCL && !SIAM_WITH_MPI
// Without MPI there is nothing to carry NCCL's collectives between processes: nccl_built() says no, and a
// communicator cannot be made (siam::Error).
namespace siam::cuda {
bool nccl_built() { return false; }
NcclUniqueId nccl_unique_id() { throw Error("NCCL is not available in the CUDA emulator (built without MPI)"); }
int nccl_version() { return 0; }
bool nccl_any_aborted() { return false; }
NcclComm::NcclComm(const NcclUniqueId&, int, int, int, StreamHandle, std::string, double) {
  throw Error("NCCL is not available in the CUDA emulator (built without MPI)");
}
NcclComm::~NcclComm() = default;
std::unique_ptr<NcclComm> NcclComm::split(std::string, double) {
  throw Error("NCCL is not available in the CUDA emulator (built without MPI)");
}
void NcclComm::all_reduce(const void*, void*, size_t, DType, NcclReduce, double) {}
void NcclComm::all_gather(const void*, void*, size_t, DType, double) {}
void NcclComm::reduce_scatter(const void*, void*, size_t, DType, NcclReduce, double) {}
void NcclComm::broadcast(void*, size_t, DType, int, double) {}
}  // namespace siam::cuda
#endif

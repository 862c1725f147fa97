// Multi-tensor EMA, SGD and LARS on CUDA (layout, math and versions in multi_tensor.h). Entry points validate and
// build the launch tables (kernels/common/mt_launch_table.h); launchers fill the argument tables; one block per
// chunk runs the shared per-element formulas (kernels/common/multi_tensor_math.h).
#include <cuda_runtime.h>

#include <type_traits>
#include <vector>

#include "kernels/common/mt_launch_table.h"
#include "kernels/common/multi_tensor_math.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/multi_tensor.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxTensors = 320;
constexpr int kMaxBlocks = 2048;

// The argument table of one launch (passed by value: CUDA >= 12.1 takes up to 32764 bytes of arguments).
template <int NP> struct MtTable {
  void* ptr[NP][kMaxTensors];       // per slot: the tensors' base pointers
  int64_t numel[kMaxTensors];       // per slot
  int64_t first_block[kMaxTensors];  // per slot: global block of the tensor's chunk 0 (LARS partials)
  uint8_t flag[kMaxTensors];        // per slot: SGD's first-step flag
  int32_t block_slot[kMaxBlocks];   // per block
  int32_t block_chunk[kMaxBlocks];  // per block: chunk within its tensor
};
static_assert(sizeof(MtTable<3>) <= 32000, "the multi-tensor argument table must fit CUDA's 32764-byte limit");

cudaStream_t stream() { return static_cast<cudaStream_t>(siam::cuda::current_stream()); }

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// This block's chunk: element range [lo, lo + len) of tensor slot `slot`.
template <int NP> struct Chunk {
  int slot;
  int64_t lo, len;
};
template <int NP> __device__ __forceinline__ Chunk<NP> my_chunk(const MtTable<NP>& tb) {
  const int slot = tb.block_slot[blockIdx.x];
  const int64_t lo = static_cast<int64_t>(tb.block_chunk[blockIdx.x]) * kMtCudaChunk;
  const int64_t rest = tb.numel[slot] - lo;
  return {slot, lo, rest < kMtCudaChunk ? rest : kMtCudaChunk};
}

// f(a[k], b[k], c[k]) for k < len with a and c updated in place (c may be null: a scratch value is passed);
// float4 loads and stores for f32 when every pointer is 16-byte aligned, then the scalar tail.
template <class T, class F>
__device__ __forceinline__ void for_each3(T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, int64_t len,
                                          F f) {
  int64_t k0 = 0;
  if constexpr (std::is_same_v<T, float>) {
    if (aligned16(a) && aligned16(b) && (c == nullptr || aligned16(c))) {
      const int64_t nv = len / 4;
      float4* a4 = reinterpret_cast<float4*>(a);
      const float4* b4 = reinterpret_cast<const float4*>(b);
      float4* c4 = reinterpret_cast<float4*>(c);
      for (int64_t v = threadIdx.x; v < nv; v += blockDim.x) {
        float4 x = a4[v];
        const float4 y = b4[v];
        float4 z = c ? c4[v] : make_float4(0.f, 0.f, 0.f, 0.f);
        f(x.x, y.x, z.x);
        f(x.y, y.y, z.y);
        f(x.z, y.z, z.z);
        f(x.w, y.w, z.w);
        a4[v] = x;
        if (c) c4[v] = z;
      }
      k0 = nv * 4;
    }
  }
  for (int64_t k = k0 + threadIdx.x; k < len; k += blockDim.x) {
    T x = a[k], z = c ? c[k] : T(0);
    f(x, b[k], z);
    a[k] = x;
    if (c) c[k] = z;
  }
}

template <class T> __global__ void __launch_bounds__(kThreads) mt_ema_kernel1(const MtTable<2> tb, T m, T om) {
  const Chunk<2> ch = my_chunk(tb);
  T* t = static_cast<T*>(tb.ptr[0][ch.slot]) + ch.lo;
  const T* o = static_cast<const T*>(tb.ptr[1][ch.slot]) + ch.lo;
  for_each3<T>(t, o, nullptr, ch.len, [=](T& x, T y, T&) { x = mt_ema_elem(x, y, m, om); });
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    mt_sgd_kernel1(const MtTable<3> tb, T wd, T mom, T damp1, T neg_lr, bool has_mom, bool nesterov) {
  const Chunk<3> ch = my_chunk(tb);
  T* p = static_cast<T*>(tb.ptr[0][ch.slot]) + ch.lo;
  const T* g = static_cast<const T*>(tb.ptr[1][ch.slot]) + ch.lo;
  T* buf = has_mom ? static_cast<T*>(tb.ptr[2][ch.slot]) + ch.lo : nullptr;
  const bool init = tb.flag[ch.slot] != 0;
  for_each3<T>(p, g, buf, ch.len,
               [=](T& x, T y, T& b) { mt_sgd_elem(x, y, b, wd, mom, damp1, neg_lr, has_mom, init, nesterov); });
}

// part[2 (block_base + b)] = sum p^2, part[... + 1] = sum (g + wd p)^2 over block b's chunk (f64, fixed tree).
template <class T>
__global__ void __launch_bounds__(kThreads) mt_lars_norms_kernel1(const MtTable<3> tb, int64_t block_base, T wd,
                                                                  double* __restrict__ part) {
  __shared__ double sp[kThreads], sd[kThreads];
  const Chunk<3> ch = my_chunk(tb);
  const T* p = static_cast<const T*>(tb.ptr[0][ch.slot]) + ch.lo;
  const T* g = static_cast<const T*>(tb.ptr[1][ch.slot]) + ch.lo;
  double a = 0, b = 0;
  for (int64_t k = threadIdx.x; k < ch.len; k += blockDim.x) {
    const T d = g[k] + p[k] * wd;
    a += static_cast<double>(p[k]) * static_cast<double>(p[k]);
    b += static_cast<double>(d) * static_cast<double>(d);
  }
  sp[threadIdx.x] = a;
  sd[threadIdx.x] = b;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) {
      sp[threadIdx.x] += sp[threadIdx.x + w];
      sd[threadIdx.x] += sd[threadIdx.x + w];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    part[2 * (block_base + blockIdx.x)] = sp[0];
    part[2 * (block_base + blockIdx.x) + 1] = sd[0];
  }
}

// part null: slr = lr for every tensor (lars_exclude). Else each block adds its tensor's partials in block order.
template <class T>
__global__ void __launch_bounds__(kThreads)
    mt_lars_kernel1(const MtTable<3> tb, T wd, double lr, double eta, bool clip_lr, const double* __restrict__ part,
                    T mom, bool has_mom, bool nesterov) {
  __shared__ double slr_s;
  const Chunk<3> ch = my_chunk(tb);
  if (threadIdx.x == 0) {
    double slr = lr;
    if (part) {
      const int64_t b0 = tb.first_block[ch.slot], nb = (tb.numel[ch.slot] + kMtCudaChunk - 1) / kMtCudaChunk;
      double ps = 0, ds = 0;
      for (int64_t b = b0; b < b0 + nb; ++b) {
        ps += part[2 * b];
        ds += part[2 * b + 1];
      }
      slr = lars_scaled_lr(sqrt(ps), sqrt(ds), lr, eta, clip_lr);
    }
    slr_s = slr;
  }
  __syncthreads();
  const T slr = static_cast<T>(slr_s);
  T* p = static_cast<T*>(tb.ptr[0][ch.slot]) + ch.lo;
  const T* g = static_cast<const T*>(tb.ptr[1][ch.slot]) + ch.lo;
  T* v = has_mom ? static_cast<T*>(tb.ptr[2][ch.slot]) + ch.lo : nullptr;
  for_each3<T>(p, g, v, ch.len, [=](T& x, T y, T& b) { mt_lars_elem(x, y, b, wd, slr, mom, has_mom, nesterov); });
}

// Fills one launch's table from per-tensor pointer arrays (ptrs[k] may be null: that pointer column is unused).
template <int NP>
void fill_table(MtTable<NP>& tb, const MtLaunch& L, const MtLaunchPlan& plan, void* const* const (&ptrs)[NP],
                const int64_t* numel, const uint8_t* flags) {
  for (size_t s = 0; s < L.tensors.size(); ++s) {
    const int32_t t = L.tensors[s];
    for (int k = 0; k < NP; ++k) tb.ptr[k][s] = ptrs[k] ? ptrs[k][t] : nullptr;
    tb.numel[s] = numel[t];
    tb.first_block[s] = plan.first_block[t];
    tb.flag[s] = flags ? flags[t] : 0;
  }
  for (size_t b = 0; b < L.block_slot.size(); ++b) {
    tb.block_slot[b] = L.block_slot[b];
    tb.block_chunk[b] = static_cast<int32_t>(L.block_chunk[b]);
  }
}

MtLaunchPlan make_plan(const char* op, DType dt, int64_t n, const int64_t* numel) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, " (cuda): expects f32 or f64 tensors, got ", dtype_name(dt));
  SIAM_CHECK(n >= 0 && (n == 0 || numel != nullptr), op, " (cuda): bad tensor list (n = ", n, ")");
  return mt_launch_plan(numel, n, kMtCudaChunk, kMaxTensors, kMaxBlocks);
}

template <class T>
void launch_ema(const MtLaunchPlan& plan, void* const* target, const void* const* online, const int64_t* numel,
                double m) {
  void* const* const ptrs[2] = {target, const_cast<void* const*>(online)};
  for (const MtLaunch& L : plan.launches) {
    MtTable<2> tb;
    fill_table<2>(tb, L, plan, ptrs, numel, nullptr);
    mt_ema_kernel1<T><<<static_cast<unsigned>(L.block_slot.size()), kThreads, 0, stream()>>>(
        tb, static_cast<T>(m), static_cast<T>(1.0 - m));
    SIAM_CUDA_LAUNCH_CHECK();
  }
}

template <class T>
void launch_sgd(const MtLaunchPlan& plan, const MtCudaSgdArgs& a, void* const* p, const void* const* g,
                void* const* buf, const uint8_t* init, const int64_t* numel) {
  const bool has_mom = a.momentum != 0;
  void* const* const ptrs[3] = {p, const_cast<void* const*>(g), has_mom ? buf : nullptr};
  for (const MtLaunch& L : plan.launches) {
    MtTable<3> tb;
    fill_table<3>(tb, L, plan, ptrs, numel, has_mom ? init : nullptr);
    mt_sgd_kernel1<T><<<static_cast<unsigned>(L.block_slot.size()), kThreads, 0, stream()>>>(
        tb, static_cast<T>(a.weight_decay), static_cast<T>(a.momentum), static_cast<T>(1.0 - a.dampening),
        static_cast<T>(-a.lr), has_mom, a.nesterov);
    SIAM_CUDA_LAUNCH_CHECK();
  }
}

template <class T>
void launch_lars(const MtLaunchPlan& plan, const MtCudaLarsArgs& a, void* const* p, const void* const* g,
                 void* const* v, const int64_t* numel) {
  const bool has_mom = a.momentum != 0;
  const double wd = a.exclude ? 0.0 : a.weight_decay;
  void* const* const ptrs[3] = {p, const_cast<void* const*>(g), has_mom ? v : nullptr};
  std::vector<MtTable<3>> tables(plan.launches.size());
  for (size_t l = 0; l < plan.launches.size(); ++l) fill_table<3>(tables[l], plan.launches[l], plan, ptrs, numel, nullptr);
  double* part = nullptr;
  const int device = siam::cuda::current_device();
  if (!a.exclude) {
    part = static_cast<double*>(
        siam::cuda::device_alloc(static_cast<size_t>(2 * plan.total_blocks) * sizeof(double), device));
    for (size_t l = 0; l < plan.launches.size(); ++l) {
      mt_lars_norms_kernel1<T><<<static_cast<unsigned>(plan.launches[l].block_slot.size()), kThreads, 0, stream()>>>(
          tables[l], plan.launches[l].block_base, static_cast<T>(wd), part);
      SIAM_CUDA_LAUNCH_CHECK();
    }
  }
  for (size_t l = 0; l < plan.launches.size(); ++l) {
    mt_lars_kernel1<T><<<static_cast<unsigned>(plan.launches[l].block_slot.size()), kThreads, 0, stream()>>>(
        tables[l], static_cast<T>(wd), a.lr, a.eta, a.clip_lr, part, static_cast<T>(a.momentum), has_mom,
        a.nesterov);
    SIAM_CUDA_LAUNCH_CHECK();
  }
  // Stream-ordered caching allocator: the block is reused only by work enqueued after these kernels.
  if (part) siam::cuda::device_free(part, device);
}

}  // namespace

void mt_ema(DType dt, int64_t n, void* const* target, const void* const* online, const int64_t* numel,
            double momentum) {
  const MtLaunchPlan plan = make_plan("mt_ema", dt, n, numel);
  if (dt == DType::f32)
    launch_ema<float>(plan, target, online, numel, momentum);
  else
    launch_ema<double>(plan, target, online, numel, momentum);
}

void mt_sgd(DType dt, int64_t n, const MtCudaSgdArgs& a, void* const* p, const void* const* g, void* const* buf,
            const uint8_t* init, const int64_t* numel) {
  const MtLaunchPlan plan = make_plan("mt_sgd", dt, n, numel);
  SIAM_CHECK(a.momentum == 0 || (buf != nullptr && init != nullptr), "mt_sgd (cuda): momentum ", a.momentum,
             " needs momentum buffers and first-step flags");
  if (dt == DType::f32)
    launch_sgd<float>(plan, a, p, g, buf, init, numel);
  else
    launch_sgd<double>(plan, a, p, g, buf, init, numel);
}

void mt_lars(DType dt, int64_t n, const MtCudaLarsArgs& a, void* const* p, const void* const* g, void* const* v,
             const int64_t* numel) {
  const MtLaunchPlan plan = make_plan("mt_lars", dt, n, numel);
  SIAM_CHECK(a.momentum == 0 || v != nullptr, "mt_lars (cuda): momentum ", a.momentum, " needs momentum buffers");
  if (plan.total_blocks == 0) return;
  if (dt == DType::f32)
    launch_lars<float>(plan, a, p, g, v, numel);
  else
    launch_lars<double>(plan, a, p, g, v, numel);
}

}  // namespace siam::kernels::cuda

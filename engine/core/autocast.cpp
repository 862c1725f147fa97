// Autocast scope, TF32 setting and the CUDA front-end helpers of engine/core/autocast.h.
#include "engine/core/autocast.h"

#include <atomic>
#include <cstdlib>

#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/autocast.h"
#endif

namespace siam {

namespace {
thread_local bool t_autocast_enabled = false;
thread_local DType t_autocast_dtype = DType::bf16;

// -1: not decided yet (the environment is read at the first query), 0 / 1 afterwards.
std::atomic<int> g_allow_tf32{-1};
std::atomic<int> g_infonce_tc{-1};
}  // namespace

AutocastGuard::AutocastGuard(DType dtype, bool enabled) : prev_enabled_(t_autocast_enabled), prev_dtype_(t_autocast_dtype) {
  SIAM_CHECK(dtype == DType::bf16, "AutocastGuard: only bf16 autocast is supported, got ", dtype_name(dtype));
  t_autocast_enabled = enabled;
  t_autocast_dtype = dtype;
}
AutocastGuard::~AutocastGuard() {
  t_autocast_enabled = prev_enabled_;
  t_autocast_dtype = prev_dtype_;
}

bool autocast_enabled() { return t_autocast_enabled; }
DType autocast_dtype() { return t_autocast_dtype; }

namespace cuda {
void set_allow_tf32(bool allow) { g_allow_tf32.store(allow ? 1 : 0); }
bool allow_tf32() {
  int v = g_allow_tf32.load();
  if (v < 0) {
    const char* e = std::getenv("SIAM_ALLOW_TF32");
    const int from_env = (e != nullptr && e[0] != '\0' && e[0] != '0') ? 1 : 0;
    int expected = -1;
    g_allow_tf32.compare_exchange_strong(expected, from_env);
    v = g_allow_tf32.load();
  }
  return v == 1;
}
void set_infonce_tensor_cores(bool on) { g_infonce_tc.store(on ? 1 : 0); }
bool infonce_tensor_cores() {
  int v = g_infonce_tc.load();
  if (v < 0) {
    const char* e = std::getenv("SIAM_INFONCE_TC");
    const int from_env = (e != nullptr && e[0] == '0' && e[1] == '\0') ? 0 : 1;
    int expected = -1;
    g_infonce_tc.compare_exchange_strong(expected, from_env);
    v = g_infonce_tc.load();
  }
  return v == 1;
}
}  // namespace cuda

namespace detail {

bool autocast_applies(const Tensor& t) {
  return t.defined() && t_autocast_enabled && t.is_cuda() && t.dtype() == DType::f32;
}

#if defined(SIAM_WITH_CUDA)
namespace {
kernels::cuda::DenseType dense_of(DType dt, const char* op) {
  switch (dt) {
    case DType::f32: return kernels::cuda::DenseType::f32;
    case DType::f64: return kernels::cuda::DenseType::f64;
    case DType::bf16: return kernels::cuda::DenseType::bf16;
    default: SIAM_FAIL(op, ": dtype ", dtype_name(dt), " has no CUDA cast (f32, f64, bf16)");
  }
}
}  // namespace
#endif

Tensor cuda_cast_contiguous(const Tensor& t, DType dt, const char* op) {
#if defined(SIAM_WITH_CUDA)
  SIAM_CHECK(t.is_cuda(), op, ": cuda_cast_contiguous needs a CUDA tensor, got one on ", t.device().str());
  SIAM_CHECK(t.dim() <= kernels::cuda::kCastMaxDims, op, ": cast of a tensor with more than ",
             kernels::cuda::kCastMaxDims, " dims, ", shape_str(t.shape()));
  Tensor out = empty(t.shape(), TensorOptions(dt, t.device()));
  kernels::cuda::cast_strided(t.device().index, dense_of(t.dtype(), op), t.raw_data(), static_cast<int>(t.dim()),
                              t.shape().data(), t.strides().data(), dense_of(dt, op), out.raw_data());
  return out;
#else
  (void)t;
  (void)dt;
  SIAM_FAIL(op, ": this build of siam has no CUDA backend");
#endif
}

std::function<void*(size_t)> DeviceScratch::fn() {
  return [this](size_t bytes) -> void* {
    keep_.push_back(empty({static_cast<int64_t>(bytes)}, TensorOptions(DType::u8, device_)));
    return keep_.back().raw_data();
  };
}

}  // namespace detail

}  // namespace siam

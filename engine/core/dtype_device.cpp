#include <cstdlib>

#include "engine/core/cuda_health.h"
#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"

namespace siam {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  if (n == "f32" || n == "float32" || n == "float") return DType::f32;
  if (n == "f64" || n == "float64" || n == "double") return DType::f64;
  if (n == "bf16" || n == "bfloat16") return DType::bf16;
  if (n == "f16" || n == "float16" || n == "half") return DType::f16;
  if (n == "i32" || n == "int32") return DType::i32;
  if (n == "i64" || n == "int64") return DType::i64;
  if (n == "u8" || n == "uint8") return DType::u8;
  SIAM_FAIL("unknown dtype '", n, "' (expected one of f32, f64, bf16, f16, i32, i64, u8)");
}

Device::Device(const std::string& spec) {
  if (spec == "cpu") {
    type = DeviceType::cpu;
    index = 0;
    return;
  }
  if (spec.rfind("cuda", 0) == 0) {
    type = DeviceType::cuda;
    index = 0;
    if (spec.size() == 4) return;
    if (spec[4] == ':' && spec.size() > 5) {
      char* end = nullptr;
      long i = std::strtol(spec.c_str() + 5, &end, 10);
      if (*end == '\0' && i >= 0 && i < 1024) {
        index = static_cast<int>(i);
        return;
      }
    }
  }
  SIAM_FAIL("bad device '", spec, "' (expected 'cpu', 'cuda' or 'cuda:N')");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

#if !defined(SIAM_WITH_CUDA)
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_sticky_error() { return {}; }
std::string cuda_unavailable_reason() { return "built without CUDA (SIAM_CUDA=OFF, or no nvcc)"; }
#endif

}  // namespace siam

// GEMM on CUDA through cuBLASLt, row-major like kernels/cpu/gemm.h:
//   D (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * D      op = transpose when ta / tb
// A, B and D are row-major with row strides lda, ldb, ldd (ld >= the stored row length); a batch of `batch`
// such products steps A, B and D by batch_stride_{a,b,d} elements (0: the same matrix for every item).
//
// Element types (ab_type for A and B, d_type for D), always with f32 (f64 for f64) accumulation:
//   f32  x f32  -> f32    CUBLAS_COMPUTE_32F, or CUBLAS_COMPUTE_32F_FAST_TF32 when allow_tf32
//   bf16 x bf16 -> f32    CUBLAS_COMPUTE_32F: the autocast path (the result stays f32, no extra pass)
//   bf16 x bf16 -> bf16   CUBLAS_COMPUTE_32F
//   f64  x f64  -> f64    CUBLAS_COMPUTE_64F
// Epilogues (fused into the GEMM's output stage, batch = 1 only):
//   bias       D[i, j] = (op(A) op(B))[i, j] + bias[j]                 bias (n), d_type (the linear forward)
//   bias_relu  D = max(op(A) op(B) + bias, 0)
//   bias_grad  D = op(A) op(B) as usual, and bias[i] = sum_k op(A)[i, k] (m), d_type: with op(A) = dY^T this
//              is the bias gradient of a linear layer, computed while dY is read for the weight gradient
//              (cuBLASLt's BGRADB; its layout rules are met by the linear backward: ta = true, tb = false).
// gemm() returns false, computing nothing, when cuBLASLt has no algorithm for the requested epilogue (the
// caller then runs without it); for epilogue none a missing algorithm is an error.
//
// Algorithm selection: cublasLtMatmulAlgoGetHeuristic, cached per (device, types, transposes, sizes, leading
// dims, batch strides, epilogue, TF32, operand alignments); gemm_cache_stats() counts the queries. Workspace:
// what the chosen algorithm asks for (at most kGemmMaxWorkspace), from `scratch`.
// Stream: kernels/cuda/gemm_context.h's dense_stream(device). Host entry points, no CUDA headers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

namespace siam::kernels::cuda {

// Element types of the dense kernels (GEMM, cuDNN convolution and batch norm, pooling).
enum class DenseType : uint8_t { f32, f64, bf16 };
inline const char* dense_type_name(DenseType t) {
  switch (t) {
    case DenseType::f32: return "f32";
    case DenseType::f64: return "f64";
    case DenseType::bf16: return "bf16";
  }
  return "?";
}
inline size_t dense_type_size(DenseType t) { return t == DenseType::f64 ? 8 : t == DenseType::f32 ? 4 : 2; }

// Device memory for one call: returns at least `bytes` bytes on the call's device, valid until the caller
// frees it after the call (engine: detail::DeviceScratch, device tensors from the caching allocator).
using ScratchFn = std::function<void*(size_t bytes)>;

enum class GemmEpilogue : uint8_t { none, bias, bias_relu, bias_grad };

constexpr size_t kGemmMaxWorkspace = size_t(32) << 20;  // NVIDIA's recommendation for Hopper

struct GemmArgs {
  DenseType ab_type = DenseType::f32;
  DenseType d_type = DenseType::f32;
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0, batch_stride_a = 0;
  const void* b = nullptr;
  int64_t ldb = 0, batch_stride_b = 0;
  void* d = nullptr;
  int64_t ldd = 0, batch_stride_d = 0;
  int64_t batch = 1;
  double alpha = 1.0, beta = 0.0;
  GemmEpilogue epilogue = GemmEpilogue::none;
  void* bias = nullptr;  // read (bias, bias_relu) or written (bias_grad); d_type elements
  bool allow_tf32 = false;
  int device = 0;
};

bool gemm(const GemmArgs& args, const ScratchFn& scratch);

struct DenseCacheStats {
  int64_t entries = 0;  // distinct keys cached
  int64_t lookups = 0;  // calls that asked the cache
  int64_t misses = 0;   // calls that ran the heuristic / search (one per new key)
};
DenseCacheStats gemm_cache_stats();
void gemm_cache_clear();

// Waits for the dense kernels' stream of `device` (benchmarks and tests).
void dense_synchronize(int device);

}  // namespace siam::kernels::cuda

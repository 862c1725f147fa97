// GEMM through cuBLASLt (contract in kernels/cuda/gemm.h).
//
// Row-major to cuBLASLt's column-major: a row-major (r, c) matrix with row stride ld is the column-major
// (c, r) matrix with leading dimension ld, its transpose. So D (m, n) = op(A) op(B) is computed as the
// column-major D^T (n, m) = op(B)^T (n, k) @ op(A)^T (k, m): cuBLASLt's "A" is our B and its "B" is our A,
// with M = n, N = m, K = k. Consequences for the epilogues: cuBLASLt's bias runs along D^T's rows, i.e. along
// our columns (bias[j], length n); BGRADB sums cuBLASLt's B = op(A)^T over K, i.e. our op(A)'s rows (length m).
//
// Version 1: descriptors are built per call (a few microseconds; PyTorch does the same), the algorithm comes
// from the per-key cache.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemm_context.h"

namespace siam::kernels::cuda {

namespace {

// One cuBLASLt handle per device, created on first use and kept for the process (destroying handles at exit,
// after the CUDA runtime may be gone, is a classic crash; the handle itself is thread-safe).
cublasLtHandle_t lt_handle(int device) {
  static std::mutex mu;
  static std::map<int, cublasLtHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  cublasLtHandle_t h = nullptr;
  SIAM_CUBLAS_CHECK(cublasLtCreate(&h));
  handles[device] = h;
  return h;
}

using GemmKey = std::tuple<int, int, int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int, bool, uint32_t, uint32_t, uint32_t, uint32_t>;
struct GemmPlan {
  bool found = false;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

struct GemmCache {
  std::mutex mu;
  std::map<GemmKey, GemmPlan> plans;
  DenseCacheStats stats;
};
GemmCache& cache() {
  static GemmCache c;
  return c;
}

// RAII owners of the per-call descriptors.
struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  ~MatmulDesc() {
    if (d) cublasLtMatmulDescDestroy(d);
  }
};
struct Layout {
  cublasLtMatrixLayout_t l = nullptr;
  ~Layout() {
    if (l) cublasLtMatrixLayoutDestroy(l);
  }
};
struct Preference {
  cublasLtMatmulPreference_t p = nullptr;
  ~Preference() {
    if (p) cublasLtMatmulPreferenceDestroy(p);
  }
};

template <class T> void set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& v) {
  SIAM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof(v)));
}
template <class T> void set_layout(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, const T& v) {
  SIAM_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, attr, &v, sizeof(v)));
}
template <class T> void set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr, const T& v) {
  SIAM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(p, attr, &v, sizeof(v)));
}

void make_layout(Layout& out, DenseType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  SIAM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&out.l, cuda_data_type(t), static_cast<uint64_t>(rows),
                                               static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    set_layout(out.l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, static_cast<int32_t>(batch));
    set_layout(out.l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, stride);
  }
}

cublasLtEpilogue_t lt_epilogue(GemmEpilogue e) {
  switch (e) {
    case GemmEpilogue::none: return CUBLASLT_EPILOGUE_DEFAULT;
    case GemmEpilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::bias_relu: return CUBLASLT_EPILOGUE_RELU_BIAS;
    case GemmEpilogue::bias_grad: return CUBLASLT_EPILOGUE_BGRADB;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

void validate(const GemmArgs& p) {
  SIAM_CHECK(p.m >= 0 && p.n >= 0 && p.k >= 0 && p.batch >= 1, "cuda gemm: bad sizes m=", p.m, " n=", p.n,
             " k=", p.k, " batch=", p.batch);
  const int64_t a_row = p.ta ? p.m : p.k, b_row = p.tb ? p.k : p.n;
  SIAM_CHECK(p.lda >= std::max<int64_t>(a_row, 1) && p.ldb >= std::max<int64_t>(b_row, 1) &&
                 p.ldd >= std::max<int64_t>(p.n, 1),
             "cuda gemm: leading dims too small: lda=", p.lda, " (rows of ", a_row, "), ldb=", p.ldb, " (rows of ",
             b_row, "), ldd=", p.ldd, " (rows of ", p.n, ")");
  const bool ok_types = (p.ab_type == DenseType::f32 && p.d_type == DenseType::f32) ||
                        (p.ab_type == DenseType::f64 && p.d_type == DenseType::f64) ||
                        (p.ab_type == DenseType::bf16 && (p.d_type == DenseType::f32 || p.d_type == DenseType::bf16));
  SIAM_CHECK(ok_types, "cuda gemm: unsupported types ", dense_type_name(p.ab_type), " x ", dense_type_name(p.ab_type),
             " -> ", dense_type_name(p.d_type));
  SIAM_CHECK(p.epilogue == GemmEpilogue::none || (p.batch == 1 && p.bias != nullptr), "cuda gemm: an epilogue needs ",
             "batch 1 and a bias pointer (batch=", p.batch, ")");
}

}  // namespace

bool gemm(const GemmArgs& p, const ScratchFn& scratch) {
  validate(p);
  if (p.m == 0 || p.n == 0) return true;
  use_device(p.device);
  cudaStream_t stream = dense_stream(p.device);
  if (p.k == 0) {  // an empty sum: D = beta * D; cuBLASLt rejects K = 0, and the engine only asks with beta = 0
    SIAM_CHECK(p.beta == 0.0 && p.epilogue == GemmEpilogue::none, "cuda gemm: k == 0 needs beta = 0 and no epilogue");
    const size_t es = dense_type_size(p.d_type);
    for (int64_t b = 0; b < p.batch; ++b)
      SIAM_CUDA_CHECK(cudaMemset2DAsync(static_cast<char*>(p.d) + b * p.batch_stride_d * es, p.ldd * es, 0,
                                        p.n * es, p.m, stream));
    return true;
  }

  const bool f64 = p.ab_type == DenseType::f64;
  cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F
                                    : (p.ab_type == DenseType::f32 && p.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                                    : CUBLAS_COMPUTE_32F);
  cudaDataType_t scale_type = f64 ? CUDA_R_64F : CUDA_R_32F;

  // cuBLASLt operands (see the header comment): A_lt = our B, B_lt = our A, D_lt = D^T.
  const int64_t M = p.n, N = p.m, K = p.k;
  const cublasOperation_t op_a = p.tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // on our B
  const cublasOperation_t op_b = p.ta ? CUBLAS_OP_T : CUBLAS_OP_N;  // on our A
  const void* a_lt = p.b;
  const void* b_lt = p.a;

  MatmulDesc desc;
  SIAM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.d, compute, scale_type));
  set_desc(desc.d, CUBLASLT_MATMUL_DESC_TRANSA, op_a);
  set_desc(desc.d, CUBLASLT_MATMUL_DESC_TRANSB, op_b);
  const cublasLtEpilogue_t epi = lt_epilogue(p.epilogue);
  if (p.epilogue != GemmEpilogue::none) {
    set_desc(desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE, epi);
    set_desc(desc.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.bias);
  }
  Layout la, lb, ld;
  // stored shapes (column-major): A_lt is (M, K) or, transposed, (K, M); B_lt is (K, N) or (N, K)
  make_layout(la, p.ab_type, op_a == CUBLAS_OP_N ? M : K, op_a == CUBLAS_OP_N ? K : M, p.ldb, p.batch, p.batch_stride_b);
  make_layout(lb, p.ab_type, op_b == CUBLAS_OP_N ? K : N, op_b == CUBLAS_OP_N ? N : K, p.lda, p.batch, p.batch_stride_a);
  make_layout(ld, p.d_type, M, N, p.ldd, p.batch, p.batch_stride_d);

  const uint32_t al_a = pointer_alignment(a_lt), al_b = pointer_alignment(b_lt), al_d = pointer_alignment(p.d);
  const uint32_t al_bias = p.bias ? pointer_alignment(p.bias) : 256;
  GemmKey key{p.device,
              static_cast<int>(p.ab_type),
              static_cast<int>(p.d_type),
              p.ta,
              p.tb,
              p.m,
              p.n,
              p.k,
              p.lda,
              p.ldb,
              p.ldd,
              p.batch,
              p.batch_stride_a,
              p.batch_stride_b,
              p.batch_stride_d,
              static_cast<int>(p.epilogue),
              compute == CUBLAS_COMPUTE_32F_FAST_TF32,
              al_a,
              al_b,
              al_d,
              al_bias};
  cublasLtHandle_t handle = lt_handle(p.device);
  GemmPlan plan;
  bool cached = false;
  {
    GemmCache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    ++c.stats.lookups;
    auto it = c.plans.find(key);
    if (it != c.plans.end()) plan = it->second, cached = true;
  }
  if (!cached) {
    Preference pref;
    SIAM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.p));
    set_pref(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, static_cast<uint64_t>(kGemmMaxWorkspace));
    set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, al_a);
    set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, al_b);
    set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, al_d);
    set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, al_d);
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle, desc.d, la.l, lb.l, ld.l, ld.l, pref.p, 1, &result,
                                                       &returned);
    // An epilogue cuBLASLt cannot fuse for these types or layouts shows as NOT_SUPPORTED (or INVALID_VALUE):
    // the caller falls back to an unfused pass. Without an epilogue every status but success is an error.
    const bool soft = st == CUBLAS_STATUS_NOT_SUPPORTED ||
                      (p.epilogue != GemmEpilogue::none && st == CUBLAS_STATUS_INVALID_VALUE);
    if (!soft) SIAM_CUBLAS_CHECK(st);
    plan.found = st == CUBLAS_STATUS_SUCCESS && returned > 0;
    if (plan.found) {
      plan.algo = result.algo;
      plan.workspace = result.workspaceSize;
    }
    GemmCache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    ++c.stats.misses;
    c.plans[key] = plan;
    c.stats.entries = static_cast<int64_t>(c.plans.size());
  }
  if (!plan.found) {
    SIAM_CHECK(p.epilogue != GemmEpilogue::none, "cuda gemm: cuBLASLt has no algorithm for ",
               dense_type_name(p.ab_type), " -> ", dense_type_name(p.d_type), " m=", p.m, " n=", p.n, " k=", p.k,
               " ta=", p.ta, " tb=", p.tb, " lda=", p.lda, " ldb=", p.ldb, " ldd=", p.ldd, " batch=", p.batch);
    return false;
  }
  void* ws = plan.workspace > 0 ? scratch(plan.workspace) : nullptr;
  if (f64) {
    const double alpha = p.alpha, beta = p.beta;
    SIAM_CUBLAS_CHECK(cublasLtMatmul(handle, desc.d, &alpha, a_lt, la.l, b_lt, lb.l, &beta, p.d, ld.l, p.d, ld.l,
                                     &plan.algo, ws, plan.workspace, stream));
  } else {
    const float alpha = static_cast<float>(p.alpha), beta = static_cast<float>(p.beta);
    SIAM_CUBLAS_CHECK(cublasLtMatmul(handle, desc.d, &alpha, a_lt, la.l, b_lt, lb.l, &beta, p.d, ld.l, p.d, ld.l,
                                     &plan.algo, ws, plan.workspace, stream));
  }
  return true;
}

DenseCacheStats gemm_cache_stats() {
  GemmCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void gemm_cache_clear() {
  GemmCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.plans.clear();
  c.stats = {};
}

void dense_synchronize(int device) {
  use_device(device);
  SIAM_CUDA_CHECK(cudaStreamSynchronize(dense_stream(device)));
}

}  // namespace siam::kernels::cuda

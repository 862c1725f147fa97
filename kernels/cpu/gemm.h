// GEMM on the CPU: C = alpha * op(A) @ op(B) + beta * C, row-major, op = transpose when ta/tb.
//   gemm:     OpenBLAS sgemm/dgemm (threaded with OpenMP; single-threaded when called inside a parallel region)
//   gemm_ref: plain triple loop, the reference the tests compare against
// Shapes: op(A) (m, k), op(B) (k, n), C (m, n); lda/ldb/ldc are row strides of the stored matrices.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc);
template <class T>
void gemm_ref(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
              int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace siam::kernels::cpu

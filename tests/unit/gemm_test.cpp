// The BLAS GEMM the engine runs (OpenBLAS, whichever core engine/core/blas.h selected) against the plain
// reference loop, over ragged sizes, both transposes, alpha/beta, and padded leading dimensions.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <iostream>
#include <vector>

#include "engine/core/blas.h"
#include "engine/core/random.h"
#include "kernels/cpu/gemm.h"

namespace siam {
namespace {

template <class T>
void check_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, T beta, double tol) {
  const int64_t pad = 3;
  int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
  Generator g(static_cast<uint64_t>(m * 10007 + n * 101 + k));
  auto a = uniform({(ta ? k : m) * lda}, -1, 1, dtype_of<T>::value, &g).template to_vector<T>();
  auto b = uniform({(tb ? n : k) * ldb}, -1, 1, dtype_of<T>::value, &g).template to_vector<T>();
  auto c0 = uniform({m * ldc}, -1, 1, dtype_of<T>::value, &g).template to_vector<T>();
  auto c_fast = c0, c_ref = c0;
  kernels::cpu::gemm<T>(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_fast.data(), ldc);
  kernels::cpu::gemm_ref<T>(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_ref.data(), ldc);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      size_t e = static_cast<size_t>(i * ldc + j);
      if (j >= n) {
        ASSERT_EQ(c_fast[e], c0[e]) << "padding column written";
        continue;
      }
      ASSERT_NEAR(c_fast[e], c_ref[e], tol * (1 + std::sqrt(static_cast<double>(k))))
          << "ta=" << ta << " tb=" << tb << " m=" << m << " n=" << n << " k=" << k << " at (" << i << "," << j << ")";
    }
}

TEST(Gemm, MatchesReferenceOnRaggedShapes) {
  std::cout << "[ blas     ] " << blas_info() << "\n";
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [m, n, k] : std::vector<std::array<int64_t, 3>>{
               {1, 1, 1}, {7, 5, 3}, {17, 33, 65}, {64, 64, 64}, {130, 31, 257}, {3, 200, 9}, {256, 48, 576}}) {
        check_gemm<float>(ta, tb, m, n, k, 1.0f, 0.0f, 2e-6);
        check_gemm<float>(ta, tb, m, n, k, -0.5f, 1.0f, 2e-6);
        check_gemm<double>(ta, tb, m, n, k, 1.5, 0.25, 1e-13);
      }
}

}  // namespace
}  // namespace siam

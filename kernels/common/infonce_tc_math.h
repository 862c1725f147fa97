// The per-lane epilogues of the tensor-core InfoNCE kernels (kernels/cuda/infonce.cu, kernel2), shared with the CPU
// emulation of a whole warp in tests/unit/mma_frag_test.cpp. A lane holds an S tile (16 rows x 64 columns, x y^T
// unscaled) as the C fragments s[nb] of 8 n-blocks: element e of s[nb] is row h = e / 2 of the lane's two rows
// (r[0] = group, r[1] = group + 8 within the warp's 16) and column j0 + 8 nb + mma::c_col(lane, e).
#pragma once
#include <cstdint>
#include <limits>

#include "kernels/common/macros.h"
#include "kernels/common/mma_frag.h"
#include "kernels/common/online_lse.h"

namespace siam::kernels::tc {

// Adds the tile's logits s / t of the lane's two rows to their online logsumexp states; columns >= cols and each
// row's masked column mc[h] (or -1) are left out.
SIAM_HD_INLINE void lse_update(OnlineLse<float> (&st)[2], const float (&s)[8][4], int64_t j0, int64_t cols,
                               const int64_t (&mc)[2], float inv_t, int lane) {
  SIAM_UNROLL
  for (int h = 0; h < 2; ++h) {
    float v[16];
    bool ok[16];
    SIAM_UNROLL
    for (int nb = 0; nb < 8; ++nb)
      SIAM_UNROLL
      for (int c = 0; c < 2; ++c) {
        const int e = 2 * h + c;
        const int64_t j = j0 + nb * 8 + mma::c_col(lane, e);
        v[2 * nb + c] = s[nb][e] * inv_t;
        ok[2 * nb + c] = j < cols && j != mc[h];
      }
    st[h] = online_lse_add(st[h], v, ok);
  }
}

// Replaces the tile's logits by P = exp(s / t - a_h) + exp(s / t - b_j) (0 where masked, past cols, or for rows
// r[h] >= rows). ai: a of the lane's two rows (+inf: term absent); b (cols) or null (term absent).
SIAM_HD_INLINE void probabilities(float (&s)[8][4], int64_t j0, int64_t cols, const int64_t (&r)[2], int64_t rows,
                                  const int64_t (&mc)[2], const float (&ai)[2], const float* b, float inv_t,
                                  int lane) {
  const float inf = std::numeric_limits<float>::infinity();
  SIAM_UNROLL
  for (int nb = 0; nb < 8; ++nb)
    SIAM_UNROLL
    for (int e = 0; e < 4; ++e) {
      const int h = e >> 1;
      const int64_t j = j0 + nb * 8 + mma::c_col(lane, e);
      const float v = s[nb][e] * inv_t;
      const float bj = (b != nullptr && j < cols) ? b[j] : inf;
      const bool ok = r[h] < rows && j < cols && j != mc[h];
      s[nb][e] = ok ? lse_exp(v - ai[h]) + lse_exp(v - bj) : 0.f;
    }
}

}  // namespace siam::kernels::tc

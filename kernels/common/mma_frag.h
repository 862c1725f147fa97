// Register fragments of the bf16 tensor-core MMA m16n8k16 (PTX mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32,
// sm_80 and later; PTX ISA, "Matrix Fragments for mma.m16n8k16"): which elements of A (16 x 16), B (16 x 8) and
// C (16 x 8, f32) each of a warp's 32 lanes holds, and the loads that fill them from shared-memory tiles. Shared by
// the tensor-core InfoNCE kernels (kernels/cuda/infonce.cu, kernel2) and a CPU emulation of their warp algebra
// (tests/unit/mma_frag_test.cpp), which checks the tile loads, the reuse of the S accumulators as the A operand of
// P Y, and the epilogue on every machine.
//   group g = lane / 4, quad q = lane % 4.
//   A: register r (0..3) holds row g + 8 (r & 1), columns 2q + 8 (r >> 1) + {0, 1} (the first in the low half).
//   B: register r (0..1) holds column n = g, rows k = 2q + 8 r + {0, 1}.
//   C: element e (0..3) is row g + 8 (e >> 1), column 2q + (e & 1).
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/common/half.h"
#include "kernels/common/macros.h"

namespace siam::kernels::mma {

SIAM_HD_INLINE int group(int lane) { return lane >> 2; }
SIAM_HD_INLINE int quad(int lane) { return lane & 3; }
SIAM_HD_INLINE int a_row(int lane, int r) { return group(lane) + 8 * (r & 1); }
SIAM_HD_INLINE int a_col(int lane, int r) { return 2 * quad(lane) + 8 * (r >> 1); }  // and a_col + 1
SIAM_HD_INLINE int b_k(int lane, int r) { return 2 * quad(lane) + 8 * r; }          // and b_k + 1
SIAM_HD_INLINE int b_n(int lane) { return group(lane); }
SIAM_HD_INLINE int c_row(int lane, int e) { return group(lane) + 8 * (e >> 1); }
SIAM_HD_INLINE int c_col(int lane, int e) { return 2 * quad(lane) + (e & 1); }

// Two bf16 (lo at the lower address, in the low half) as one 32-bit register.
SIAM_HD_INLINE uint32_t ld_pair(const uint16_t* p) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const uint32_t*>(p);  // 4-byte aligned: even offsets from an aligned tile
#else
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
#endif
}
SIAM_HD_INLINE uint32_t pack2(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }
// Two f32 rounded to bf16 (nearest even) in one register, lo in the low half.
SIAM_HD_INLINE uint32_t pack_bf16(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#else
  return pack2(f32_to_bf16_bits(lo), f32_to_bf16_bits(hi));
#endif
}

// A fragment of k-step [k0, k0 + 16) from a row-major tile whose row 0 is the fragment's row 0 (ld elements a row).
SIAM_HD_INLINE void load_a(uint32_t (&a)[4], const uint16_t* tile, int ld, int k0, int lane) {
  SIAM_UNROLL
  for (int r = 0; r < 4; ++r) a[r] = ld_pair(tile + a_row(lane, r) * ld + k0 + a_col(lane, r));
}
// B fragment (k in [k0, k0 + 16), n in [n0, n0 + 8)) with element (k, n) at t[n * ld + k]: the rows of Y as the
// columns of B, for S = X Y^T. One 32-bit read a register.
SIAM_HD_INLINE void load_b_nmajor(uint32_t (&b)[2], const uint16_t* t, int ld, int n0, int k0, int lane) {
  SIAM_UNROLL
  for (int r = 0; r < 2; ++r) b[r] = ld_pair(t + (n0 + b_n(lane)) * ld + k0 + b_k(lane, r));
}
// B fragment with element (k, n) at t[k * ld + n]: Y itself as B, for P Y. Two 16-bit reads a register.
SIAM_HD_INLINE void load_b_kmajor(uint32_t (&b)[2], const uint16_t* t, int ld, int n0, int k0, int lane) {
  SIAM_UNROLL
  for (int r = 0; r < 2; ++r) {
    const uint16_t* p = t + (k0 + b_k(lane, r)) * ld + n0 + b_n(lane);
    b[r] = pack2(p[0], p[ld]);
  }
}
// The C fragments of n-blocks 2k and 2k + 1 (a 16 x 16 f32 block) as the A fragment of k-step k, in bf16: the
// layouts line up, so the probabilities never leave the registers.
SIAM_HD_INLINE void c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

}  // namespace siam::kernels::mma

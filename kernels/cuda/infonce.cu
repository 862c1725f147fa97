// Tiled InfoNCE on CUDA (shapes, forms and versions in infonce.h). Three layers: the exported entries validate
// and pick the dtype, static launchers choose grids and shared memory, the __global__ kernels compute.
#include <cuda_runtime.h>

#include <limits>
#include <type_traits>

#include "kernels/common/infonce_tc_math.h"
#include "kernels/common/mma_frag.h"
#include "kernels/common/online_lse.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/infonce.h"
#include "kernels/cuda/stream.h"

namespace siam::kernels::cuda {

namespace {

constexpr int kBM = 64;        // rows of a tile (one block)
constexpr int kBN = 64;        // columns of a tile
constexpr int kBK = 32;        // slice of D staged in shared memory for the logits
constexpr int kDC = 128;       // columns of D accumulated at once by the gradient pass
constexpr int kThreads = 256;  // 16 x 16 threads, each a 4 x 4 micro-tile (rows ty + 16 r, columns tx + 16 c)
constexpr unsigned kFull = 0xffffffffu;

cudaStream_t stream() { return static_cast<cudaStream_t>(siam::cuda::current_stream()); }

template <class T> __device__ __forceinline__ T d_log(T x);
template <> __device__ __forceinline__ float d_log<float>(float x) { return logf(x); }
template <> __device__ __forceinline__ double d_log<double>(double x) { return ::log(x); }
template <class T> __device__ __forceinline__ T d_inf() { return std::numeric_limits<T>::infinity(); }

// acc[r][c] = x_{i0 + ty + 16 r} . y_{j0 + tx + 16 c} for r, c < 4; rows >= nx and columns >= ny read as zeros.
// xs, ys: shared (kBM, kBK + 1) and (kBN, kBK + 1) (padded: conflict-free reads along k). Ends synchronized.
template <class T>
__device__ __forceinline__ void tile_dot(const T* __restrict__ x, int64_t nx, int64_t i0, const T* __restrict__ y,
                                         int64_t ny, int64_t j0, int64_t D, T* xs, T* ys, T (&acc)[4][4]) {
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[r][c] = T(0);
  for (int64_t k0 = 0; k0 < D; k0 += kBK) {
    for (int e = tid; e < kBM * kBK; e += kThreads) {  // a warp reads 32 consecutive elements of one row
      const int r = e / kBK, k = e % kBK;
      const int64_t gk = k0 + k, gi = i0 + r, gj = j0 + r;
      xs[r * (kBK + 1) + k] = (gi < nx && gk < D) ? x[gi * D + gk] : T(0);
      ys[r * (kBK + 1) + k] = (gj < ny && gk < D) ? y[gj * D + gk] : T(0);
    }
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < kBK; ++k) {
      T a[4], b[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) a[r] = xs[(ty + 16 * r) * (kBK + 1) + k];
#pragma unroll
      for (int c = 0; c < 4; ++c) b[c] = ys[(tx + 16 * c) * (kBK + 1) + k];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] += a[r] * b[c];
    }
    __syncthreads();
  }
}

// Row i's masked column: i itself (mask_diag), mask[i] (a column index, or -1 for none), or none.
__device__ __forceinline__ int64_t masked_col(int64_t i, int64_t rows, bool mask_diag, const int64_t* mask) {
  if (i >= rows) return -1;
  return mask_diag ? i : (mask ? mask[i] : -1);
}

// Column ranges (blockIdx.y): few row blocks over many columns (MoCo's 256 queries against a queue of 65536:
// 4 blocks) would leave most SMs idle, so the launchers below (launch_lse1 / launch_grad1 and the kernel2 ones)
// give each row block gridDim.y ranges of `span` columns (a multiple of the column tile): split_plan. A range's
// lse state goes to `part` ((m, s) per range and row), merged in range order by infonce_lse_merge_kernel; its
// gradient to its own slice of a scratch buffer, summed in range order by infonce_sum_ranges_kernel. The plan
// depends on the shape only, so the result is the same on every device. Without ranges (gridDim.y 1, part
// null) the kernels write lse and dx directly.
// The range [jb, je) of block row blockIdx.y.
__device__ __forceinline__ void column_range(int64_t cols, int64_t span, int64_t& jb, int64_t& je) {
  jb = static_cast<int64_t>(blockIdx.y) * span;
  je = jb + span < cols ? jb + span : cols;
}

// lse_i = log( [init_i present: e^init_i] + sum_{j < cols, j != masked column} e^{x_i . y_j / t} ), over this
// block's column range; part non-null: the range's (m, s) states instead (see above).
template <class T>
__global__ void __launch_bounds__(kThreads)
    infonce_lse_kernel1(int64_t rows, int64_t cols, int64_t D, T inv_t, const T* __restrict__ x,
                        const T* __restrict__ y, bool mask_diag, const int64_t* __restrict__ mask,
                        const T* __restrict__ init, T* __restrict__ lse, int64_t span, T* __restrict__ part) {
  __shared__ T xs[kBM * (kBK + 1)], ys[kBN * (kBK + 1)];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kBM;
  int64_t jb, je;
  column_range(cols, span, jb, je);
  OnlineLse<T> st[4];
  int64_t mc[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t i = i0 + ty + 16 * r;
    st[r] = online_lse_empty<T>();
    // once: the row group's 16 states are merged below, and only the first range's
    if (init && i < rows && tx == 0 && blockIdx.y == 0) st[r] = {init[i], T(1)};
    mc[r] = masked_col(i, rows, mask_diag, mask);
  }
  for (int64_t j0 = jb; j0 < je; j0 += kBN) {
    T acc[4][4];
    tile_dot(x, rows, i0, y, je, j0, D, xs, ys, acc);
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      T v[4];
      bool ok[4];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t j = j0 + tx + 16 * c;
        v[c] = acc[r][c] * inv_t;
        ok[c] = j < je && j != mc[r];
      }
      st[r] = online_lse_add(st[r], v, ok);
    }
  }
  // The 16 threads of a row group are lanes with the same bits 4.. of the lane id (tx = lane & 15).
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) {
      const OnlineLse<T> other{__shfl_xor_sync(kFull, st[r].m, o), __shfl_xor_sync(kFull, st[r].s, o)};
      st[r] = online_lse_merge(st[r], other);
    }
  if (tx == 0)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t i = i0 + ty + 16 * r;
      if (i >= rows) continue;
      if (part) {
        part[2 * (static_cast<int64_t>(blockIdx.y) * rows + i)] = st[r].m;
        part[2 * (static_cast<int64_t>(blockIdx.y) * rows + i) + 1] = st[r].s;
      } else {
        lse[i] = st[r].m + d_log(st[r].s);
      }
    }
}

// lse_i from the ranges' states part (ranges, rows, 2), merged in range order.
template <class T>
__global__ void __launch_bounds__(kThreads)
    infonce_lse_merge_kernel(int64_t rows, int64_t ranges, const T* __restrict__ part, T* __restrict__ lse) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    OnlineLse<T> st = online_lse_empty<T>();
    for (int64_t k = 0; k < ranges; ++k) st = online_lse_merge(st, {part[2 * (k * rows + i)], part[2 * (k * rows + i) + 1]});
    lse[i] = st.m + d_log(st.s);
  }
}

// out[e] = sum over the ranges of part[k n + e] (n = rows x D), in range order.
template <class T>
__global__ void __launch_bounds__(kThreads)
    infonce_sum_ranges_kernel(int64_t n, int64_t ranges, const T* __restrict__ part, T* __restrict__ out) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T acc = part[e];
    for (int64_t k = 1; k < ranges; ++k) acc += part[k * n + e];
    out[e] = acc;
  }
}

// dx_i = grad[0] * inv_m * inv_t * sum_{j < cols, not masked} (e^{S_ij - a_i} + e^{S_ij - b_j}) y_j, S = x y^T / t.
// a (rows) / b (cols) may be null (that term absent); an entry +inf drops its term for that row / column.
// Masked column of row i as in infonce_lse_kernel1. Shared memory (dynamic): xs, ys as in tile_dot, ps (kBM,
// kBN + 1) the probability tile, yc (kBN, kDC) a slice of Y_J.
template <class T>
__global__ void __launch_bounds__(kThreads)
    infonce_grad_kernel1(int64_t rows, int64_t cols, int64_t D, T inv_t, const T* __restrict__ x,
                         const T* __restrict__ y, bool mask_diag, const int64_t* __restrict__ mask,
                         const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ grad, T inv_m,
                         T* __restrict__ dx, int64_t span) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* xs = reinterpret_cast<T*>(smem_raw);
  T* ys = xs + kBM * (kBK + 1);
  T* ps = ys + kBN * (kBK + 1);
  T* yc = ps + kBM * (kBN + 1);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kBM;
  const T scale = grad[0] * inv_m * inv_t;
  int64_t jb, je;
  column_range(cols, span, jb, je);
  dx += static_cast<int64_t>(blockIdx.y) * rows * D;  // this range's slice (the only one without ranges)
  T ai[4];
  int64_t mc[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t i = i0 + ty + 16 * r;
    ai[r] = (a && i < rows) ? a[i] : d_inf<T>();  // +inf: exp(S - inf) = 0, the term drops
    mc[r] = masked_col(i, rows, mask_diag, mask);
  }
  for (int64_t d0 = 0; d0 < D; d0 += kDC) {
    T acc[4][8];
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[r][c] = T(0);
    for (int64_t j0 = jb; j0 < je; j0 += kBN) {
      T s[4][4];
      tile_dot(x, rows, i0, y, je, j0, D, xs, ys, s);
      T bj[4];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t j = j0 + tx + 16 * c;
        bj[c] = (b && j < je) ? b[j] : d_inf<T>();
      }
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t i = i0 + ty + 16 * r;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int64_t j = j0 + tx + 16 * c;
          const T v = s[r][c] * inv_t;
          const bool ok = i < rows && j < je && j != mc[r];
          ps[(ty + 16 * r) * (kBN + 1) + tx + 16 * c] = ok ? lse_exp(v - ai[r]) + lse_exp(v - bj[c]) : T(0);
        }
      }
      for (int e = tid; e < kBN * kDC; e += kThreads) {
        const int jr = e / kDC, dd = e % kDC;
        const int64_t gj = j0 + jr, gd = d0 + dd;
        yc[e] = (gj < je && gd < D) ? y[gj * D + gd] : T(0);
      }
      __syncthreads();
#pragma unroll 4
      for (int j = 0; j < kBN; ++j) {
        T p[4], q[8];
#pragma unroll
        for (int r = 0; r < 4; ++r) p[r] = ps[(ty + 16 * r) * (kBN + 1) + j];
#pragma unroll
        for (int c = 0; c < 8; ++c) q[c] = yc[j * kDC + tx + 16 * c];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int c = 0; c < 8; ++c) acc[r][c] += p[r] * q[c];
      }
      __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t i = i0 + ty + 16 * r;
      if (i >= rows) continue;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int64_t d = d0 + tx + 16 * c;
        if (d < D) dx[i * D + d] = acc[r][c] * scale;
      }
    }
  }
}

// ---- kernel2: bf16 tensor cores (mma.sync m16n8k16, f32 accumulation; fragments in kernels/common/mma_frag.h) ----
// A block of 4 warps owns 64 rows, a warp 16 of them; column tiles of 64 rows of Y are staged in shared memory
// (rows padded to DP + 8 bf16: conflict-free fragment reads). DP: the features padded with zeros to 64, 128, 192
// or 256.

constexpr int kTcRows = 64, kTcThreads = 128;

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(SIAM_CUDA_EMU)
  ::siam::emu::mma_m16n8k16_bf16(c, a, b);  // the CPU emulator (kernels/emu/simt.h)
#else
  __trap();  // the tensor-core path is only chosen on sm_80 and later (infonce_tc_supported)
#endif
}

// dst (64 x (DP + 8)) = rows [r0, r0 + 64) of src (n rows of DP bf16), zeros past n; 16-byte copies.
template <int DP>
__device__ __forceinline__ void stage_bf16_rows(uint16_t* dst, const uint16_t* __restrict__ src, int64_t n,
                                                int64_t r0) {
  constexpr int kChunks = DP / 8;
  for (int e = threadIdx.x; e < kTcRows * kChunks; e += kTcThreads) {
    const int r = e / kChunks, c = e % kChunks;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (r0 + r < n) v = *reinterpret_cast<const uint4*>(src + (r0 + r) * DP + c * 8);
    *reinterpret_cast<uint4*>(dst + r * (DP + 8) + c * 8) = v;
  }
}

// S (16 x 64) of this warp for the staged tiles: s[nb] is the C fragment of columns [8 nb, 8 nb + 8).
template <int DP>
__device__ __forceinline__ void warp_logits(const uint16_t* xw, const uint16_t* ys, int lane, float (&s)[8][4]) {
  constexpr int LD = DP + 8;
#pragma unroll
  for (int nb = 0; nb < 8; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
#pragma unroll
  for (int ks = 0; ks < DP / 16; ++ks) {
    uint32_t af[4];
    mma::load_a(af, xw, LD, ks * 16, lane);
#pragma unroll
    for (int nb = 0; nb < 8; ++nb) {
      uint32_t bf[2];
      mma::load_b_nmajor(bf, ys, LD, nb * 8, ks * 16, lane);
      mma_bf16_16816(s[nb], af, bf);
    }
  }
}

// The block's shared tiles and this lane's place in them, common to both kernel2 passes: xs holds the block's 64
// rows of x (staged here; the first tile step's barrier publishes them), ys a 64-row tile of y, xw this warp's 16
// rows of xs, r the lane's two rows (group and group + 8 of the warp's).
template <int DP> struct TcWarp {
  static constexpr int LD = DP + 8;
  uint16_t* xs;
  uint16_t* ys;
  const uint16_t* xw;
  int lane;
  int64_t r[2];

  __device__ __forceinline__ TcWarp(unsigned char* smem, const uint16_t* __restrict__ x, int64_t rows) {
    xs = reinterpret_cast<uint16_t*>(smem);
    ys = xs + kTcRows * LD;
    const int warp = threadIdx.x >> 5;
    lane = threadIdx.x & 31;
    xw = xs + warp * 16 * LD;
    const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kTcRows;
    stage_bf16_rows<DP>(xs, x, rows, i0);
    r[0] = i0 + warp * 16 + mma::group(lane);
    r[1] = r[0] + 8;
  }

  // Stages the column tile [j0, j0 + 64) of y and forms this warp's S tile s (x y^T, unscaled).
  __device__ __forceinline__ void logits(const uint16_t* __restrict__ y, int64_t cols, int64_t j0, float (&s)[8][4]) {
    __syncthreads();  // the previous tile is consumed (and, the first time, xs is staged)
    stage_bf16_rows<DP>(ys, y, cols, j0);
    __syncthreads();
    warp_logits<DP>(xw, ys, lane, s);
  }
};

// infonce_lse_kernel1's contract with bf16 operands (x rows, y cols, each DP wide) and f32 results.
template <int DP>
__global__ void __launch_bounds__(kTcThreads)
    infonce_lse_kernel2(int64_t rows, int64_t cols, float inv_t, const uint16_t* __restrict__ x,
                        const uint16_t* __restrict__ y, bool mask_diag, const int64_t* __restrict__ mask,
                        const float* __restrict__ init, float* __restrict__ lse, int64_t span,
                        float* __restrict__ part) {
  extern __shared__ __align__(16) unsigned char tc_smem[];
  TcWarp<DP> w(tc_smem, x, rows);
  const int lane = w.lane;
  const int64_t(&r)[2] = w.r;
  int64_t jb, je;
  column_range(cols, span, jb, je);
  OnlineLse<float> st[2];
  int64_t mc[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    st[h] = online_lse_empty<float>();
    // once: the quad's 4 are merged, and only the first range's
    if (init && r[h] < rows && mma::quad(lane) == 0 && blockIdx.y == 0) st[h] = {init[r[h]], 1.f};
    mc[h] = masked_col(r[h], rows, mask_diag, mask);
  }
  for (int64_t j0 = jb; j0 < je; j0 += kTcRows) {
    float s[8][4];
    w.logits(y, je, j0, s);
    tc::lse_update(st, s, j0, je, mc, inv_t, lane);
  }
  // the 4 lanes of a quad hold the same two rows
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int o = 1; o <= 2; o <<= 1) {
      const OnlineLse<float> other{__shfl_xor_sync(kFull, st[h].m, o), __shfl_xor_sync(kFull, st[h].s, o)};
      st[h] = online_lse_merge(st[h], other);
    }
  if (mma::quad(lane) == 0)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (r[h] >= rows) continue;
      if (part) {
        part[2 * (static_cast<int64_t>(blockIdx.y) * rows + r[h])] = st[h].m;
        part[2 * (static_cast<int64_t>(blockIdx.y) * rows + r[h]) + 1] = st[h].s;
      } else {
        lse[r[h]] = st[h].m + logf(st[h].s);
      }
    }
}

// infonce_grad_kernel1's contract with bf16 operands: dx (rows, D) f32, D <= DP. The probabilities P of a
// 16 x 64 tile stay in registers and become the A operand of P Y_J (mma::c_to_a); Y_J is read as B straight from
// the staged tile (mma::load_b_kmajor). The whole dx row block (16 x DP per warp) accumulates in registers.
template <int DP>
__global__ void __launch_bounds__(kTcThreads)
    infonce_grad_kernel2(int64_t rows, int64_t cols, int64_t D, float inv_t, const uint16_t* __restrict__ x,
                         const uint16_t* __restrict__ y, bool mask_diag, const int64_t* __restrict__ mask,
                         const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ grad,
                         float inv_m, float* __restrict__ dx, int64_t span) {
  constexpr int LD = TcWarp<DP>::LD, ND = DP / 8;
  extern __shared__ __align__(16) unsigned char tc_smem[];
  TcWarp<DP> w(tc_smem, x, rows);
  const int lane = w.lane;
  const int64_t(&r)[2] = w.r;
  int64_t jb, je;
  column_range(cols, span, jb, je);
  dx += static_cast<int64_t>(blockIdx.y) * rows * D;  // this range's slice (the only one without ranges)
  float ai[2];
  int64_t mc[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    ai[h] = (a && r[h] < rows) ? a[r[h]] : d_inf<float>();
    mc[h] = masked_col(r[h], rows, mask_diag, mask);
  }
  float acc[ND][4];
#pragma unroll
  for (int nd = 0; nd < ND; ++nd) acc[nd][0] = acc[nd][1] = acc[nd][2] = acc[nd][3] = 0.f;
  for (int64_t j0 = jb; j0 < je; j0 += kTcRows) {
    float s[8][4];
    w.logits(y, je, j0, s);
    tc::probabilities(s, j0, je, r, rows, mc, ai, b, inv_t, lane);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t pa[4];
      mma::c_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int nd = 0; nd < ND; ++nd) {
        uint32_t bf[2];
        mma::load_b_kmajor(bf, w.ys, LD, nd * 8, kk * 16, lane);
        mma_bf16_16816(acc[nd], pa, bf);
      }
    }
  }
  const float scale = grad[0] * inv_m * inv_t;
#pragma unroll
  for (int nd = 0; nd < ND; ++nd)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t i = r[e >> 1], d = nd * 8 + mma::c_col(lane, e);
      if (i < rows && d < D) dx[i * D + d] = acc[nd][e] * scale;
    }
}

// The column ranges of a grid of row_blocks over cols columns in tiles of `tile` (see column_range): one range
// while the row blocks alone reach kSplitBlocks, else as many ranges of at least kSplitMinTiles tiles as bring
// the grid to kSplitBlocks. A function of the shape alone.
constexpr int64_t kSplitBlocks = 256, kSplitMinTiles = 16;
struct SplitPlan {
  int64_t ranges = 1, span = 1;  // span: columns per range, a multiple of the tile
};
SplitPlan split_plan(int64_t row_blocks, int64_t cols, int64_t tile) {
  SplitPlan p;
  p.span = cols > 0 ? cols : 1;
  const int64_t col_tiles = (cols + tile - 1) / tile;
  if (row_blocks >= kSplitBlocks || col_tiles < 2 * kSplitMinTiles) return p;
  const int64_t want = (kSplitBlocks + row_blocks - 1) / row_blocks, most = col_tiles / kSplitMinTiles;
  const int64_t ranges = want < most ? want : most;
  if (ranges <= 1) return p;
  const int64_t per = (col_tiles + ranges - 1) / ranges;
  p.span = per * tile;
  p.ranges = (col_tiles + per - 1) / per;
  return p;
}

// Stream-ordered scratch from the caching allocator, for the ranges' partial results (freed after the launches
// that use it are queued: the allocator reuses it only behind them on this stream).
class RangeScratch {
 public:
  explicit RangeScratch(size_t bytes) : device_(siam::cuda::current_device()) {
    p_ = siam::cuda::caching_alloc(bytes, device_, nullptr);
  }
  ~RangeScratch() { siam::cuda::caching_free(p_, device_); }
  RangeScratch(const RangeScratch&) = delete;
  RangeScratch& operator=(const RangeScratch&) = delete;
  template <class T> T* as() const { return static_cast<T*>(p_); }

 private:
  int device_;
  void* p_ = nullptr;
};

unsigned flat_grid(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

// lse from the ranges' states, in range order (after a split launch).
template <class T> void merge_ranges_lse(int64_t rows, int64_t ranges, const T* part, T* lse) {
  infonce_lse_merge_kernel<T><<<flat_grid(rows), kThreads, 0, stream()>>>(rows, ranges, part, lse);
  SIAM_CUDA_LAUNCH_CHECK();
}
template <class T> void sum_ranges(int64_t n, int64_t ranges, const T* part, T* out) {
  infonce_sum_ranges_kernel<T><<<flat_grid(n), kThreads, 0, stream()>>>(n, ranges, part, out);
  SIAM_CUDA_LAUNCH_CHECK();
}

size_t tc_smem_bytes(int64_t dp) { return sizeof(uint16_t) * 2 * kTcRows * static_cast<size_t>(dp + 8); }

template <int DP>
void launch_lse2(int64_t rows, int64_t cols, float inv_t, const uint16_t* x, const uint16_t* y, bool mask_diag,
                 const int64_t* mask, const float* init, float* lse) {
  const size_t smem = tc_smem_bytes(DP);
  SIAM_CUDA_CHECK(cudaFuncSetAttribute(infonce_lse_kernel2<DP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  const auto blocks = static_cast<unsigned>((rows + kTcRows - 1) / kTcRows);
  const SplitPlan sp = split_plan(blocks, cols, kTcRows);
  if (sp.ranges == 1) {
    infonce_lse_kernel2<DP><<<blocks, kTcThreads, smem, stream()>>>(rows, cols, inv_t, x, y, mask_diag, mask, init,
                                                                    lse, sp.span, nullptr);
    SIAM_CUDA_LAUNCH_CHECK();
    return;
  }
  RangeScratch part(sizeof(float) * 2 * static_cast<size_t>(sp.ranges * rows));
  infonce_lse_kernel2<DP><<<dim3(blocks, static_cast<unsigned>(sp.ranges)), kTcThreads, smem, stream()>>>(
      rows, cols, inv_t, x, y, mask_diag, mask, init, lse, sp.span, part.as<float>());
  SIAM_CUDA_LAUNCH_CHECK();
  merge_ranges_lse<float>(rows, sp.ranges, part.as<float>(), lse);
}

template <int DP>
void launch_grad2(int64_t rows, int64_t cols, int64_t D, float inv_t, const uint16_t* x, const uint16_t* y,
                  bool mask_diag, const int64_t* mask, const float* a, const float* b, const float* grad, float inv_m,
                  float* dx) {
  const size_t smem = tc_smem_bytes(DP);
  SIAM_CUDA_CHECK(cudaFuncSetAttribute(infonce_grad_kernel2<DP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  const auto blocks = static_cast<unsigned>((rows + kTcRows - 1) / kTcRows);
  const SplitPlan sp = split_plan(blocks, cols, kTcRows);
  if (sp.ranges == 1) {
    infonce_grad_kernel2<DP><<<blocks, kTcThreads, smem, stream()>>>(rows, cols, D, inv_t, x, y, mask_diag, mask, a,
                                                                     b, grad, inv_m, dx, sp.span);
    SIAM_CUDA_LAUNCH_CHECK();
    return;
  }
  RangeScratch part(sizeof(float) * static_cast<size_t>(sp.ranges * rows * D));
  infonce_grad_kernel2<DP><<<dim3(blocks, static_cast<unsigned>(sp.ranges)), kTcThreads, smem, stream()>>>(
      rows, cols, D, inv_t, x, y, mask_diag, mask, a, b, grad, inv_m, part.as<float>(), sp.span);
  SIAM_CUDA_LAUNCH_CHECK();
  sum_ranges<float>(rows * D, sp.ranges, part.as<float>(), dx);
}

void tc_lse(int64_t dp, int64_t rows, int64_t cols, float inv_t, const void* x, const void* y, bool mask_diag,
            const int64_t* mask, const float* init, float* lse) {
  const auto* xb = static_cast<const uint16_t*>(x);
  const auto* yb = static_cast<const uint16_t*>(y);
  switch (dp) {
    case 64: return launch_lse2<64>(rows, cols, inv_t, xb, yb, mask_diag, mask, init, lse);
    case 128: return launch_lse2<128>(rows, cols, inv_t, xb, yb, mask_diag, mask, init, lse);
    case 192: return launch_lse2<192>(rows, cols, inv_t, xb, yb, mask_diag, mask, init, lse);
    case 256: return launch_lse2<256>(rows, cols, inv_t, xb, yb, mask_diag, mask, init, lse);
    default: SIAM_FAIL("infonce (cuda, tensor cores): padded dim must be 64, 128, 192 or 256, got ", dp);
  }
}

void tc_grad(int64_t dp, int64_t rows, int64_t cols, int64_t D, float inv_t, const void* x, const void* y,
             bool mask_diag, const int64_t* mask, const float* a, const float* b, const float* grad, float inv_m,
             float* dx) {
  const auto* xb = static_cast<const uint16_t*>(x);
  const auto* yb = static_cast<const uint16_t*>(y);
  switch (dp) {
    case 64: return launch_grad2<64>(rows, cols, D, inv_t, xb, yb, mask_diag, mask, a, b, grad, inv_m, dx);
    case 128: return launch_grad2<128>(rows, cols, D, inv_t, xb, yb, mask_diag, mask, a, b, grad, inv_m, dx);
    case 192: return launch_grad2<192>(rows, cols, D, inv_t, xb, yb, mask_diag, mask, a, b, grad, inv_m, dx);
    case 256: return launch_grad2<256>(rows, cols, D, inv_t, xb, yb, mask_diag, mask, a, b, grad, inv_m, dx);
    default: SIAM_FAIL("infonce (cuda, tensor cores): padded dim must be 64, 128, 192 or 256, got ", dp);
  }
}

// Whether the tensor-core operands tc serve this call (T is the compute type; f32 only).
template <class T> bool use_tc(const InfonceBf16* tc, int64_t cols) {
  if constexpr (!std::is_same_v<T, float>)
    return false;
  else
    return tc != nullptr && tc->rows != nullptr && tc->dp > 0 && cols > 0;
}

template <class T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// pos[i] = z_i . other_i / t, other_i = z_{(i + off) mod M} (self) or keys_i (cross). A warp per row.
template <class T>
__global__ void infonce_pos_logits_kernel1(int64_t rows, int64_t D, int64_t off, bool self, T inv_t,
                                           const T* __restrict__ z, const T* __restrict__ keys, T* __restrict__ pos) {
  const int lane = threadIdx.x & 31;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; i < rows;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x / 32) {
    const T* zi = z + i * D;
    const T* o = self ? z + ((i + off) % rows) * D : keys + i * D;
    T s = 0;
    for (int64_t k = lane; k < D; k += 32) s += zi[k] * o[k];
    s = warp_sum(s);
    if (lane == 0) pos[i] = s * inv_t;
  }
}

// The positive terms of dz (the tiles cover the denominators), c = grad[0] * inv_m * inv_t:
//   self:  dz_i -= c (z_{(i + off) mod M} + z_{(i - off) mod M})
//   cross: dz_i += c (e^{p_i - lse_i} - 1) k_i,  p_i = z_i . k_i / t
template <class T>
__global__ void infonce_pos_grad_kernel1(int64_t rows, int64_t D, int64_t off, bool self, T inv_t,
                                         const T* __restrict__ z, const T* __restrict__ keys,
                                         const T* __restrict__ lse, const T* __restrict__ grad, T inv_m,
                                         T* __restrict__ dz) {
  const int lane = threadIdx.x & 31;
  const T c = grad[0] * inv_m * inv_t;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; i < rows;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x / 32) {
    T* o = dz + i * D;
    if (self) {
      const T* zp = z + ((i + off) % rows) * D;
      const T* zq = z + ((i - off % rows + rows) % rows) * D;
      for (int64_t k = lane; k < D; k += 32) o[k] -= c * (zp[k] + zq[k]);
    } else {
      const T* zi = z + i * D;
      const T* ki = keys + i * D;
      T s = 0;
      for (int64_t k = lane; k < D; k += 32) s += zi[k] * ki[k];
      s = warp_sum(s);
      const T w = c * (lse_exp(s * inv_t - lse[i]) - T(1));
      for (int64_t k = lane; k < D; k += 32) o[k] += w * ki[k];
    }
  }
}

// loss[0] = (1/M) sum_i (lse_i - pos_i), summed in f64: per-thread strided partials, then a fixed tree.
template <class T>
__global__ void infonce_loss_kernel1(int64_t rows, const T* __restrict__ lse, const T* __restrict__ pos,
                                     T* __restrict__ loss) {
  __shared__ double part[kThreads];
  double s = 0;
  for (int64_t i = threadIdx.x; i < rows; i += kThreads)
    s += static_cast<double>(lse[i]) - static_cast<double>(pos[i]);
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) loss[0] = static_cast<T>(part[0] / static_cast<double>(rows));
}

unsigned row_tiles(int64_t rows) { return static_cast<unsigned>((rows + kBM - 1) / kBM); }
unsigned warp_rows_grid(int64_t rows) {
  const int64_t blocks = (rows + kThreads / 32 - 1) / (kThreads / 32);
  return static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

// infonce_lse_kernel1 / infonce_grad_kernel1 over every row block, with column ranges where split_plan asks.
template <class T>
void launch_lse1(int64_t rows, int64_t cols, int64_t D, T inv_t, const T* x, const T* y, bool mask_diag,
                 const int64_t* mask, const T* init, T* lse) {
  const unsigned blocks = row_tiles(rows);
  const SplitPlan sp = split_plan(blocks, cols, kBN);
  if (sp.ranges == 1) {
    infonce_lse_kernel1<T><<<blocks, kThreads, 0, stream()>>>(rows, cols, D, inv_t, x, y, mask_diag, mask, init, lse,
                                                              sp.span, nullptr);
    SIAM_CUDA_LAUNCH_CHECK();
    return;
  }
  RangeScratch part(sizeof(T) * 2 * static_cast<size_t>(sp.ranges * rows));
  infonce_lse_kernel1<T><<<dim3(blocks, static_cast<unsigned>(sp.ranges)), kThreads, 0, stream()>>>(
      rows, cols, D, inv_t, x, y, mask_diag, mask, init, lse, sp.span, part.as<T>());
  SIAM_CUDA_LAUNCH_CHECK();
  merge_ranges_lse<T>(rows, sp.ranges, part.as<T>(), lse);
}

template <class T>
void launch_grad1(int64_t rows, int64_t cols, int64_t D, T inv_t, const T* x, const T* y, bool mask_diag,
                  const int64_t* mask, const T* a, const T* b, const T* grad, T inv_m, T* dx) {
  const size_t smem = sizeof(T) * (2 * kBM * (kBK + 1) + kBM * (kBN + 1) + kBN * kDC);
  SIAM_CUDA_CHECK(cudaFuncSetAttribute(infonce_grad_kernel1<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  const unsigned blocks = row_tiles(rows);
  const SplitPlan sp = split_plan(blocks, cols, kBN);
  if (sp.ranges == 1) {
    infonce_grad_kernel1<T><<<blocks, kThreads, smem, stream()>>>(rows, cols, D, inv_t, x, y, mask_diag, mask, a, b,
                                                                  grad, inv_m, dx, sp.span);
    SIAM_CUDA_LAUNCH_CHECK();
    return;
  }
  RangeScratch part(sizeof(T) * static_cast<size_t>(sp.ranges * rows * D));
  infonce_grad_kernel1<T><<<dim3(blocks, static_cast<unsigned>(sp.ranges)), kThreads, smem, stream()>>>(
      rows, cols, D, inv_t, x, y, mask_diag, mask, a, b, grad, inv_m, part.as<T>(), sp.span);
  SIAM_CUDA_LAUNCH_CHECK();
  sum_ranges<T>(rows * D, sp.ranges, part.as<T>(), dx);
}

template <class T>
void launch_forward(const InfonceArgs& a, const T* z, const T* keys, const T* queue, T* pos, T* lse, T* loss,
                    const InfonceBf16* tc) {
  const T inv_t = static_cast<T>(1.0 / a.temperature);
  const int64_t M = a.rows, D = a.dim;
  infonce_pos_logits_kernel1<T><<<warp_rows_grid(M), kThreads, 0, stream()>>>(M, D, a.pos_offset, a.self, inv_t, z,
                                                                              keys, pos);
  SIAM_CUDA_LAUNCH_CHECK();
  if constexpr (std::is_same_v<T, float>) {
    if (use_tc<T>(tc, a.self ? M : a.cols)) {
      if (a.self)
        tc_lse(tc->dp, M, M, inv_t, tc->rows, tc->rows, true, nullptr, nullptr, lse);
      else
        tc_lse(tc->dp, M, a.cols, inv_t, tc->rows, tc->cols, false, nullptr, pos, lse);
      infonce_loss_kernel1<T><<<1, kThreads, 0, stream()>>>(M, lse, pos, loss);
      SIAM_CUDA_LAUNCH_CHECK();
      return;
    }
  }
  if (a.self)
    launch_lse1<T>(M, M, D, inv_t, z, z, true, nullptr, nullptr, lse);
  else  // the positive is in the denominator: each row's state starts at (pos_i, 1)
    launch_lse1<T>(M, a.cols, D, inv_t, z, queue, false, nullptr, pos, lse);
  infonce_loss_kernel1<T><<<1, kThreads, 0, stream()>>>(M, lse, pos, loss);
  SIAM_CUDA_LAUNCH_CHECK();
}

template <class T>
void launch_backward(const InfonceArgs& a, const T* grad, const T* z, const T* keys, const T* queue, const T* lse,
                     T* dz, const InfonceBf16* tc) {
  const T inv_t = static_cast<T>(1.0 / a.temperature), inv_m = static_cast<T>(1.0 / static_cast<double>(a.rows));
  const int64_t M = a.rows, D = a.dim;
  if constexpr (std::is_same_v<T, float>) {
    if (use_tc<T>(tc, a.self ? M : a.cols)) {
      if (a.self)
        tc_grad(tc->dp, M, M, D, inv_t, tc->rows, tc->rows, true, nullptr, lse, lse, grad, inv_m, dz);
      else
        tc_grad(tc->dp, M, a.cols, D, inv_t, tc->rows, tc->cols, false, nullptr, lse, nullptr, grad, inv_m, dz);
      infonce_pos_grad_kernel1<T><<<warp_rows_grid(M), kThreads, 0, stream()>>>(M, D, a.pos_offset, a.self, inv_t,
                                                                                z, keys, lse, grad, inv_m, dz);
      SIAM_CUDA_LAUNCH_CHECK();
      return;
    }
  }
  if (a.self)  // G + G^T: row softmax and column softmax terms in one row pass
    launch_grad1<T>(M, M, D, inv_t, z, z, true, nullptr, lse, lse, grad, inv_m, dz);
  else
    launch_grad1<T>(M, a.cols, D, inv_t, z, queue, false, nullptr, lse, nullptr, grad, inv_m, dz);
  infonce_pos_grad_kernel1<T><<<warp_rows_grid(M), kThreads, 0, stream()>>>(M, D, a.pos_offset, a.self, inv_t, z,
                                                                            keys, lse, grad, inv_m, dz);
  SIAM_CUDA_LAUNCH_CHECK();
}

void check_args(const char* op, DType dt, const InfonceArgs& a, const void* z, const void* keys, const void* queue) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, " (cuda): expects f32 or f64 rows, got ", dtype_name(dt));
  SIAM_CHECK(a.rows >= 1 && a.dim >= 1, op, " (cuda): needs at least one row and one feature, got rows ", a.rows,
             ", dim ", a.dim);
  SIAM_CHECK(a.temperature > 0, op, " (cuda): temperature must be positive, got ", a.temperature);
  SIAM_CHECK(z != nullptr, op, " (cuda): rows are null");
  if (a.self) {
    SIAM_CHECK(a.cols == a.rows, op, " (cuda): the self form has cols = rows, got cols ", a.cols, ", rows ", a.rows);
    SIAM_CHECK(a.pos_offset >= 0, op, " (cuda): pos_offset must be >= 0, got ", a.pos_offset);
  } else {
    SIAM_CHECK(a.cols >= 0 && keys != nullptr && (a.cols == 0 || queue != nullptr), op,
               " (cuda): the cross form needs keys (rows, D) and a queue (cols, D), got cols ", a.cols);
  }
}

template <class T>
void launch_grad(int64_t rows, int64_t cols, int64_t D, double temperature, const T* x, const T* y,
                 const int64_t* mask, const T* a, const T* b, const T* grad, double scale, T* dx) {
  launch_grad1<T>(rows, cols, D, static_cast<T>(1.0 / temperature), x, y, false, mask, a, b, grad,
                  static_cast<T>(scale), dx);
}

void check_pass(const char* op, DType dt, int64_t rows, int64_t cols, int64_t dim, double temperature) {
  SIAM_CHECK(dt == DType::f32 || dt == DType::f64, op, " (cuda): expects f32 or f64 rows, got ", dtype_name(dt));
  SIAM_CHECK(rows >= 1 && cols >= 1 && dim >= 1, op, " (cuda): needs rows, columns and features, got ", rows, " x ",
             cols, " x ", dim);
  SIAM_CHECK(temperature > 0, op, " (cuda): temperature must be positive, got ", temperature);
}

}  // namespace

static void check_tc_pass(const char* op, DType dt, int64_t dim, const InfonceBf16* tc) {
  if (tc == nullptr) return;
  SIAM_CHECK(dt == DType::f32, op, " (cuda): the tensor-core operands go with f32 rows, got ", dtype_name(dt));
  SIAM_CHECK(tc->rows != nullptr && tc->cols != nullptr && tc->dp == infonce_tc_dim(dim), op,
             " (cuda): tensor-core operands need bf16 rows and columns padded to ", infonce_tc_dim(dim),
             " features for dim ", dim, ", got ", tc->dp);
}

void infonce_rows_lse(DType dt, int64_t rows, int64_t cols, int64_t dim, double temperature, const void* x,
                      const void* y, const int64_t* mask, void* lse, const InfonceBf16* tc) {
  check_pass("infonce_rows_lse", dt, rows, cols, dim, temperature);
  check_tc_pass("infonce_rows_lse", dt, dim, tc);
  if (tc != nullptr) {
    tc_lse(tc->dp, rows, cols, static_cast<float>(1.0 / temperature), tc->rows, tc->cols, false, mask, nullptr,
           static_cast<float*>(lse));
    return;
  }
  if (dt == DType::f32)
    launch_lse1<float>(rows, cols, dim, static_cast<float>(1.0 / temperature), static_cast<const float*>(x),
                       static_cast<const float*>(y), false, mask, nullptr, static_cast<float*>(lse));
  else
    launch_lse1<double>(rows, cols, dim, 1.0 / temperature, static_cast<const double*>(x),
                        static_cast<const double*>(y), false, mask, nullptr, static_cast<double*>(lse));
}

void infonce_grad_pass(DType dt, int64_t rows, int64_t cols, int64_t dim, double temperature, const void* x,
                       const void* y, const int64_t* mask, const void* a, const void* b, const void* grad,
                       double scale, void* dx, const InfonceBf16* tc) {
  check_pass("infonce_grad_pass", dt, rows, cols, dim, temperature);
  check_tc_pass("infonce_grad_pass", dt, dim, tc);
  if (tc != nullptr) {
    tc_grad(tc->dp, rows, cols, dim, static_cast<float>(1.0 / temperature), tc->rows, tc->cols, false, mask,
            static_cast<const float*>(a), static_cast<const float*>(b), static_cast<const float*>(grad),
            static_cast<float>(scale), static_cast<float*>(dx));
    return;
  }
  if (dt == DType::f32)
    launch_grad<float>(rows, cols, dim, temperature, static_cast<const float*>(x), static_cast<const float*>(y), mask,
                       static_cast<const float*>(a), static_cast<const float*>(b), static_cast<const float*>(grad),
                       scale, static_cast<float*>(dx));
  else
    launch_grad<double>(rows, cols, dim, temperature, static_cast<const double*>(x), static_cast<const double*>(y),
                        mask, static_cast<const double*>(a), static_cast<const double*>(b),
                        static_cast<const double*>(grad), scale, static_cast<double*>(dx));
}

static void check_tc(const char* op, DType dt, const InfonceArgs& a, const InfonceBf16* tc) {
  if (tc == nullptr) return;
  SIAM_CHECK(dt == DType::f32, op, " (cuda): the tensor-core operands go with f32 rows, got ", dtype_name(dt));
  SIAM_CHECK(tc->rows != nullptr && (a.self || a.cols == 0 || tc->cols != nullptr), op,
             " (cuda): tensor-core operands without their bf16 rows or queue");
  SIAM_CHECK(tc->dp == infonce_tc_dim(a.dim), op, " (cuda): tensor-core rows padded to ", tc->dp, " features for dim ",
             a.dim, ", expected ", infonce_tc_dim(a.dim));
}

void infonce_forward(DType dt, const InfonceArgs& a, const void* z, const void* keys, const void* queue, void* pos,
                     void* lse, void* loss, const InfonceBf16* tc) {
  check_args("infonce_forward", dt, a, z, keys, queue);
  check_tc("infonce_forward", dt, a, tc);
  if (dt == DType::f32)
    launch_forward<float>(a, static_cast<const float*>(z), static_cast<const float*>(keys),
                          static_cast<const float*>(queue), static_cast<float*>(pos), static_cast<float*>(lse),
                          static_cast<float*>(loss), tc);
  else
    launch_forward<double>(a, static_cast<const double*>(z), static_cast<const double*>(keys),
                           static_cast<const double*>(queue), static_cast<double*>(pos), static_cast<double*>(lse),
                           static_cast<double*>(loss), nullptr);
}

void infonce_backward(DType dt, const InfonceArgs& a, const void* grad, const void* z, const void* keys,
                      const void* queue, const void* lse, void* dz, const InfonceBf16* tc) {
  check_args("infonce_backward", dt, a, z, keys, queue);
  check_tc("infonce_backward", dt, a, tc);
  if (dt == DType::f32)
    launch_backward<float>(a, static_cast<const float*>(grad), static_cast<const float*>(z),
                           static_cast<const float*>(keys), static_cast<const float*>(queue),
                           static_cast<const float*>(lse), static_cast<float*>(dz), tc);
  else
    launch_backward<double>(a, static_cast<const double*>(grad), static_cast<const double*>(z),
                            static_cast<const double*>(keys), static_cast<const double*>(queue),
                            static_cast<const double*>(lse), static_cast<double*>(dz), nullptr);
}

int64_t infonce_tc_dim(int64_t dim) {
  if (dim < 1 || dim > kInfonceTcMaxDim) return 0;
  return (dim + 63) / 64 * 64;
}

bool infonce_tc_supported(int device) {
  int major = 0;
  SIAM_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major >= 8;
}

}  // namespace siam::kernels::cuda

// Consistency losses of the non-contrastive methods on the CPU: BYOL / SimSiam's normalized MSE and VICReg's
// three terms.
//
// Normalized MSE: p, z (N, D) row-major. pn = p / max(|p|, 1e-12), zn likewise, c_i = pn_i . zn_i,
//   L = (1/N) sum_i (2 - 2 c_i).
//   backward: dL/dpn_i = -(2/N) zn_i, through the normalization (as engine normalize: x / max(|x|, eps)):
//   dp_i = -(2/N) rp_i (zn_i - c_i pn_i) with rp_i = 1 / |p_i| (just rp_i zn_i term when |p_i| <= eps);
//   dz_i symmetric.
//   nmse_forward keeps 3 numbers per row (|p_i|, |z_i|, c_i) and returns L; nmse_backward makes dp and dz in
//   one pass over p and z. OpenMP over rows, dot products accumulated in double, the mean summed in row order.
//
// VICReg: z1, z2 (N, D), N >= 2. Per branch: Zc = z - mean_rows(z), var_j = sum_n Zc_nj^2 / (N - 1),
//   std_j = sqrt(var_j + eps), C = Zc^T Zc / (N - 1) (D, D).
//   invariance = sum (z1 - z2)^2 / (N D)
//   variance   = (mean_j relu(1 - std1_j) + mean_j relu(1 - std2_j)) / 2
//   covariance = (sum_{i!=j} C1_ij^2 + sum_{i!=j} C2_ij^2) / D
//   backward (g_inv, g_var, g_cov the gradients of the three terms), per branch (sign +1 for z1, -1 for z2):
//     dz = sign g_inv 2 (z1 - z2) / (N D)
//        - g_var [std_j < 1] Zc_nj / (2 D std_j (N - 1))
//        + g_cov 4 / (D (N - 1)) Zc (C - diag(C))                    (no centering term: Zc^T 1 = 0)
//   Covariance through the smaller Gram matrix: when N < D, with G = Zc Zc^T (N, N),
//     sum_ij C_ij^2 = |G|_F^2 / (N - 1)^2  and  Zc C = G Zc / (N - 1),
//   so the fused path never forms the D x D matrix then: 2 N^2 D flops and N^2 memory instead of 2 N D^2 and
//   D^2 (VICReg's default projector is D = 8192 wide for batches of 256 per GPU). For N >= D it forms C.
//   vicreg_forward keeps Zc1, Zc2 (N, D), mean, var (D) per branch and the Gram matrix or C per branch
//   (vicreg_gram_dim(N, D)^2 each); vicreg_backward: one gemm per branch plus one elementwise pass.
//   Column statistics in double (OpenMP over column blocks), products by gemm (OpenBLAS) in T.
//
// Versions: nmse_ref, vicreg_ref: plain loops in double (VICReg's with the D x D covariance), loss and
// gradients in one call.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

template <class T> double nmse_ref(int64_t n, int64_t d, const T* p, const T* z, T* dp, T* dz);
// stats (n, 3): |p_i|, |z_i|, c_i. Returns L.
template <class T> double nmse_forward(int64_t n, int64_t d, const T* p, const T* z, T* stats);
// dp, dz (n, d) = grad * dL/dp, dL/dz; either may be null (not needed).
template <class T>
void nmse_backward(int64_t n, int64_t d, T grad, const T* p, const T* z, const T* stats, T* dp, T* dz);

struct VicregValues {
  double invariance = 0, variance = 0, covariance = 0;
};

// Side of the per-branch Gram matrix the fused path keeps: N when N < D (G = Zc Zc^T), else D (C).
inline int64_t vicreg_gram_dim(int64_t n, int64_t d) { return n < d ? n : d; }

// grad: the gradients of (invariance, variance, covariance); dz1, dz2 (n, d) written when not null.
template <class T>
VicregValues vicreg_ref(int64_t n, int64_t d, const T* z1, const T* z2, double eps, const double grad[3], T* dz1,
                        T* dz2);
// Writes zc1, zc2 (n, d), mean1, mean2, var1, var2 (d), gram1, gram2 (g, g) with g = vicreg_gram_dim(n, d).
template <class T>
VicregValues vicreg_forward(int64_t n, int64_t d, const T* z1, const T* z2, double eps, T* zc1, T* zc2, T* mean1,
                            T* mean2, T* var1, T* var2, T* gram1, T* gram2);
// dz1, dz2 (n, d) from the forward's buffers (either may be null: not needed); grad as in vicreg_ref.
template <class T>
void vicreg_backward(int64_t n, int64_t d, double eps, const double grad[3], const T* zc1, const T* zc2, const T* mean1,
                     const T* mean2, const T* var1, const T* var2, const T* gram1, const T* gram2, T* dz1, T* dz2);

}  // namespace siam::kernels::cpu

// Batch whitening (W-MSE) on the CPU (see /work/shared/KERNEL_NOTES.md, "Batch whitening").
//
//   x (M, D) row-major, M >= 2.  Xc (M, D) = x - mean_rows(x).
//   Sigma (D, D) = Xc^T Xc / (M - 1) + eps I.
//   cholesky:      Sigma = L L^T, W = L^{-1} (lower triangular).
//   newton_schulz: s = tr(Sigma), Sn = Sigma / s, P_1 = (3 I - Sn) / 2, P_{k+1} = (3 P_k - P_k^3 Sn) / 2,
//                  W = P_iters / sqrt(s)  (-> Sigma^{-1/2} as iters grows; IterNorm, Huang et al. 2019).
//   Y (M, D) = Xc W^T.
//
// Backward, G = dL/dY (M, D):
//   cholesky: with F = G^T Y (D, D), L^T dL/dL = -F (since W L = I), so Murray's (2016) formula
//             dL/dSigma = L^{-T} Phi(L^T dL/dL) L^{-1} becomes  dSigma = -W^T Phi(F) W,
//             Phi = lower triangle with the diagonal halved. F is formed as (G^T Xc) W^T (Y is not kept).
//   newton_schulz: dW = G^T Xc; dP_iters = dW / sqrt(s); back through each P_{k+1} = (3 P - P P P Sn) / 2 as
//             a product of matrices (the P_k are kept); then Sn = Sigma / s and s = tr(Sigma).
//   both:     dXc = G W + Xc (dSigma + dSigma^T) / (M - 1);  dx = dXc - mean_rows(dXc).
//
// Versions:
//   whiten_ref:  plain loops in double (unblocked Cholesky, forward substitution for W, naive products),
//                forward and backward in one call.
//   whiten_cholesky_forward / _backward, whiten_ns_forward / _backward: the fast path. Column means in double
//                (OpenMP over column blocks), every M x D x D and D x D x D product through gemm (OpenBLAS), the
//                Cholesky factor and its inverse in double through OpenBLAS's LAPACK (dpotrf, dtrtri). Both
//                algorithms check positive definiteness the same way (the Newton-Schulz path factors Sigma
//                too: D^3 / 3 flops against its 6 (iters - 1) D^3).
//   Positive definiteness: pivot j (the variance of feature j left after the features before it,
//   L_jj^2) must exceed D * machine_epsilon(T) * Sigma_jj; a smaller or non-finite pivot is reported.
#pragma once
#include <cstdint>

namespace siam::kernels::cpu {

// The first pivot that fails (index -1: Sigma is positive definite), its value L_jj^2 and Sigma_jj.
struct WhitenPivot {
  int64_t index = -1;
  double pivot = 0, diag = 0;
};

// Reference. algo_ns: Newton-Schulz with `iters` iterations, else Cholesky. Writes y (m, d); when g is not
// null, dx (m, d) = dL/dx for dL/dy = g. Returns the pivot check (y and dx untouched when it fails).
template <class T>
WhitenPivot whiten_ref(int64_t m, int64_t d, const T* x, double eps, bool algo_ns, int iters, T* y, const T* g, T* dx);

// Cholesky forward: xc (m, d) centered x, w (d, d) = L^{-1} (zero above the diagonal), y (m, d).
template <class T> WhitenPivot whiten_cholesky_forward(int64_t m, int64_t d, const T* x, double eps, T* xc, T* w, T* y);
// dx (m, d) = dL/dx for dL/dy = g (m, d), from the forward's xc and w.
template <class T> void whiten_cholesky_backward(int64_t m, int64_t d, const T* g, const T* xc, const T* w, T* dx);

// Newton-Schulz forward: xc (m, d), sn (d, d) = Sigma / tr(Sigma), p (iters, d, d) = P_1 .. P_iters,
// *trace = tr(Sigma), y (m, d). iters >= 1.
template <class T>
WhitenPivot whiten_ns_forward(int64_t m, int64_t d, const T* x, double eps, int iters, T* xc, T* sn, T* p,
                              double* trace, T* y);
// The factor step alone, for a covariance formed elsewhere (the CUDA path's, copied to the host): sigma (d, d)
// in double -> w (d, d) = L^{-1} in double (zero above the diagonal), after the pivot check at T's precision.
// w is untouched when the check fails.
template <class T> WhitenPivot whiten_inverse_factor(int64_t d, const double* sigma, double* w);
// The pivot check alone (Newton-Schulz needs no factor): sigma (d, d) in double.
template <class T> WhitenPivot whiten_pivot_check(int64_t d, const double* sigma);

template <class T>
void whiten_ns_backward(int64_t m, int64_t d, int iters, const T* g, const T* xc, const T* sn, const T* p, double trace,
                        T* dx);

}  // namespace siam::kernels::cpu

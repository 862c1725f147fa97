// The BLAS kernels siam runs on. OpenBLAS 0.3.21 (Debian 12) does not know recent Xeons (family 6 model
// 143/207: Sapphire/Emerald Rapids) and falls back to its SSE3 "Prescott" kernels, 3x slower than its
// AVX-512 "SkylakeX" ones on every GEMM and so on every convolution. OpenBLAS reads OPENBLAS_CORETYPE only
// when it loads, so a program that wants the fast kernels re-executes itself once with the variable set.
// A user's own OPENBLAS_CORETYPE is always respected.
#pragma once
#include <string>

namespace siam {

// "OpenBLAS 0.3.21 ... SkylakeX" style description of the BLAS in use.
std::string blas_info();
std::string blas_core();

// When OpenBLAS runs its generic Prescott kernels on a CPU with AVX-512 (F, CD, BW, DQ, VL) and
// OPENBLAS_CORETYPE is unset, sets OPENBLAS_CORETYPE=SkylakeX and re-executes /proc/self/exe with argv
// (does not return). Otherwise returns and nothing changes. Call it first thing in main().
void ensure_fast_blas(char** argv);

}  // namespace siam

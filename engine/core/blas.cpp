#include "engine/core/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace siam {

std::string blas_info() { return openblas_get_config(); }
std::string blas_core() { return openblas_get_corename(); }

namespace {
bool cpu_has_avx512_skx() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}
}  // namespace

void ensure_fast_blas(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // the user's choice, or we already re-executed
  if (std::strcmp(openblas_get_corename(), "Prescott") != 0 || !cpu_has_avx512_skx()) return;
  if (setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the slow kernels, and say so once
  std::fprintf(stderr, "siam: warning: OpenBLAS runs its generic kernels on this AVX-512 CPU and re-executing with "
                       "OPENBLAS_CORETYPE=SkylakeX failed (%s); set it yourself for ~3x faster GEMMs\n",
               std::strerror(errno));
}

}  // namespace siam

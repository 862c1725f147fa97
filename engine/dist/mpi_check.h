// SIAM_MPI_CHECK(expr): runs an MPI call and throws siam::Error with the expression, file, line and
// MPI_Error_string when it does not return MPI_SUCCESS. The communicators are created with MPI_ERRORS_RETURN
// so that failures arrive here instead of aborting inside MPI. Also detail::mpi_type, a dtype's MPI type. Only in
// builds with SIAM_WITH_MPI.
#pragma once
#if SIAM_WITH_MPI
#include <mpi.h>

#include <string>

#include "engine/core/dtype.h"
#include "engine/core/error.h"

namespace siam::dist::detail {
// The MPI type of a dtype's elements; bf16 and f16 are MPI_UINT16_T (moved, never reduced by MPI).
inline MPI_Datatype mpi_type(DType t, const char* op) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8: return MPI_UINT8_T;
    case DType::bf16:
    case DType::f16: return MPI_UINT16_T;
  }
  SIAM_FAIL(op, ": no MPI type for dtype ", dtype_name(t));
}

inline std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}
}  // namespace siam::dist::detail

#define SIAM_MPI_CHECK(expr)                                                                                        \
  do {                                                                                                              \
    int siam_mpi_rc_ = (expr);                                                                                      \
    if (siam_mpi_rc_ != MPI_SUCCESS)                                                                                \
      throw ::siam::Error(::siam::detail::str_cat("MPI call ", #expr, " failed at ", __FILE__, ":", __LINE__, ": ", \
                                                  ::siam::dist::detail::mpi_error_string(siam_mpi_rc_)));           \
  } while (0)
#endif

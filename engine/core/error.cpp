#include "engine/core/error.h"

namespace siam::detail {
void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
  throw Error(str_cat("internal error (a bug in siam): ", expr, " failed at ", file, ":", line,
                      msg.empty() ? "" : ": ", msg));
}
}  // namespace siam::detail

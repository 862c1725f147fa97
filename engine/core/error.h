// siam::Error: the one exception type for user mistakes (shape, dtype, device, missing file, bad config).
// Its message names the op or file and the values at fault. Internal invariants use SIAM_ASSERT.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace siam {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace siam

// SIAM_CHECK(cond, parts...): throws siam::Error with the streamed parts when cond is false.
#define SIAM_CHECK(cond, ...)                                                   \
  do {                                                                          \
    if (!(cond)) throw ::siam::Error(::siam::detail::str_cat(__VA_ARGS__));     \
  } while (0)

#define SIAM_FAIL(...) throw ::siam::Error(::siam::detail::str_cat(__VA_ARGS__))

// Internal invariant: a failure is a bug in siam, reported with file and line (thrown, never abort()).
#define SIAM_ASSERT(cond, ...)                                                                      \
  do {                                                                                              \
    if (!(cond)) ::siam::detail::assert_fail(#cond, __FILE__, __LINE__,                             \
                                             ::siam::detail::str_cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)

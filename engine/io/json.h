// A small JSON reader for the headers of safetensors files (and the metadata of checkpoints): objects,
// arrays, strings (with escapes, \u included), integers, numbers, true/false/null. Nesting is limited to
// 64 levels and every error throws siam::Error with the byte offset, so hostile input cannot crash it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace siam::io {

struct JsonValue {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool b = false;
  double num = 0;
  bool is_integer = false;  // a number written without fraction or exponent that fits in int64
  int64_t integer = 0;
  std::string str;
  std::vector<JsonValue> items;                            // array
  std::vector<std::pair<std::string, JsonValue>> members;  // object, in file order

  const JsonValue* member(std::string_view key) const;
};

// Parses a whole document (trailing whitespace allowed, nothing else). `what` prefixes error messages.
JsonValue parse_json(std::string_view text, const std::string& what);
// "..." with JSON escapes.
std::string json_quote(std::string_view s);

}  // namespace siam::io

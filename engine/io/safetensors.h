// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"key": "value"}}, then the tensors' bytes (offsets relative to the end of the header).
//
// The reader validates everything before it trusts it: header length within the file, JSON syntax, known
// dtypes, non-negative shapes, byte counts that match the shapes, offsets inside the data section and
// tiling it without overlaps or gaps (as the reference implementation requires). Any failure throws a
// siam::Error that names the file and what is wrong; a corrupted file never crashes the reader.
//
// The writer stores tensors in the order given, contiguous and little-endian, pads the header with spaces
// to a multiple of 8 bytes (so the data is aligned) and writes atomically (temporary file, fsync, rename).
// dtypes: F32 F64 BF16 F16 I32 I64 U8 map to siam's; BOOL is read as u8.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace siam::io {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

struct SafetensorsContents {
  NamedTensors tensors;  // in the order of their data in the file
  Metadata metadata;     // the "__metadata__" object (string values only, as the format requires)
  // The tensor named `name`, or an undefined tensor.
  Tensor find(const std::string& name) const;
  // The tensor named `name`; throws siam::Error naming the file when it is absent.
  Tensor get(const std::string& name) const;
  std::string path;
};

struct SaveOptions {
  // When set, floating tensors (f32/f64/bf16/f16) are converted to this dtype on the way out (bf16 halves a
  // checkpoint); integer tensors are written as they are.
  std::optional<DType> floating_dtype{};
};

// Writes `tensors` (any device, any layout; names unique and non-empty) and `metadata` to `path`.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {},
                      const SaveOptions& options = {});
// Reads a whole file into CPU tensors.
SafetensorsContents load_safetensors(const std::string& path);

// The format's dtype names ("F32", "BF16", ...).
const char* safetensors_dtype_name(DType t);

// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename over `path`, fsync of the
// directory. Throws siam::Error naming the file on any failure (and removes the temporary file).
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces);

}  // namespace siam::io

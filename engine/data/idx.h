// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed: magic 0x00 0x00 <type> <ndim>,
// then ndim big-endian u32 sizes, then the data. Only the u8 element type (0x08) is used by those datasets.
#pragma once
#include <string>

#include "engine/tensor.h"

namespace siam::data {

// Reads an IDX u8 file into a u8 tensor of the stored shape. Throws siam::Error naming the file for a
// missing file, a bad magic number, an unsupported element type, or a truncated body.
Tensor read_idx(const std::string& path);

// The standard file names of an MNIST-style folder. split: "train" or "test" (t10k). Prefers the .gz file,
// falls back to the uncompressed one.
std::string idx_path(const std::string& root, const std::string& split, bool labels);

}  // namespace siam::data

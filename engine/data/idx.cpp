#include "engine/data/idx.h"

#include <zlib.h>

#include <filesystem>
#include <vector>

namespace siam::data {

namespace {
// Whole-file read through zlib's gzread, which also reads uncompressed files as they are.
std::vector<unsigned char> read_all(const std::string& path) {
  SIAM_CHECK(std::filesystem::exists(path), "read_idx: file '", path, "' does not exist");
  gzFile f = gzopen(path.c_str(), "rb");
  SIAM_CHECK(f != nullptr, "read_idx: cannot open '", path, "'");
  std::vector<unsigned char> out;
  std::vector<unsigned char> buf(1 << 20);
  while (true) {
    int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      SIAM_FAIL("read_idx: '", path, "' is corrupt or truncated (zlib: ", msg, ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  gzclose(f);
  return out;
}
}  // namespace

Tensor read_idx(const std::string& path) {
  std::vector<unsigned char> bytes = read_all(path);
  SIAM_CHECK(bytes.size() >= 4, "read_idx: '", path, "' is too short for an IDX header (", bytes.size(), " bytes)");
  SIAM_CHECK(bytes[0] == 0 && bytes[1] == 0, "read_idx: '", path, "' has a bad magic number (first bytes ",
             int(bytes[0]), " ", int(bytes[1]), ", expected 0 0): not an IDX file");
  SIAM_CHECK(bytes[2] == 0x08, "read_idx: '", path, "' has element type 0x", std::hex, int(bytes[2]), std::dec,
             "; only unsigned bytes (0x08) are supported");
  int ndim = bytes[3];
  SIAM_CHECK(ndim >= 1 && ndim <= 4, "read_idx: '", path, "' declares ", ndim, " dims (expected 1 to 4)");
  SIAM_CHECK(bytes.size() >= 4 + 4 * static_cast<size_t>(ndim), "read_idx: '", path, "' is truncated inside its header");
  Shape shape;
  size_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    const unsigned char* p = bytes.data() + 4 + 4 * d;
    uint32_t s = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    shape.push_back(static_cast<int64_t>(s));
    count *= s;
  }
  size_t header = 4 + 4 * static_cast<size_t>(ndim);
  SIAM_CHECK(bytes.size() - header >= count, "read_idx: '", path, "' is truncated: shape ", shape_str(shape),
             " needs ", count, " bytes of data, found ", bytes.size() - header);
  Tensor t = empty(shape, DType::u8);
  std::copy(bytes.begin() + static_cast<std::ptrdiff_t>(header),
            bytes.begin() + static_cast<std::ptrdiff_t>(header + count), t.data<uint8_t>());
  return t;
}

std::string idx_path(const std::string& root, const std::string& split, bool labels) {
  SIAM_CHECK(split == "train" || split == "test", "idx_path: split must be 'train' or 'test', got '", split, "'");
  std::string base = root + "/" + (split == "train" ? "train" : "t10k") + (labels ? "-labels-idx1-ubyte" : "-images-idx3-ubyte");
  if (std::filesystem::exists(base + ".gz")) return base + ".gz";
  if (std::filesystem::exists(base)) return base;
  SIAM_FAIL("no ", split, labels ? " labels" : " images", " in '", root, "' (looked for ", base, ".gz and ", base, ")");
}

}  // namespace siam::data

// IDX reading: plain and gzip files written by the test, the corrupt-file errors, and the real
// Fashion-MNIST files when the Debian package is installed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/test_util.h"
#include "engine/data/idx.h"

namespace siam {
namespace {

using test::error_of;
std::string tmp_path(const std::string& name) { return test::tmp_path("idx", name); }

using ::testing::HasSubstr;


std::vector<unsigned char> idx_bytes(std::vector<uint32_t> shape, unsigned char fill) {
  std::vector<unsigned char> b = {0, 0, 0x08, static_cast<unsigned char>(shape.size())};
  size_t n = 1;
  for (uint32_t s : shape) {
    b.push_back(s >> 24);
    b.push_back(s >> 16);
    b.push_back(s >> 8);
    b.push_back(s);
    n *= s;
  }
  for (size_t i = 0; i < n; ++i) b.push_back(static_cast<unsigned char>(fill + i));
  return b;
}

void write_file(const std::string& p, const std::vector<unsigned char>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}


TEST(Idx, ReadsPlainAndGzip) {
  auto b = idx_bytes({2, 3, 2}, 10);
  write_file(tmp_path("plain.idx"), b);
  gzFile g = gzopen(tmp_path("packed.idx.gz").c_str(), "wb");
  gzwrite(g, b.data(), static_cast<unsigned>(b.size()));
  gzclose(g);
  for (auto name : {"plain.idx", "packed.idx.gz"}) {
    Tensor t = data::read_idx(tmp_path(name));
    EXPECT_EQ(t.shape(), (Shape{2, 3, 2}));
    EXPECT_EQ(t.dtype(), DType::u8);
    auto v = t.to_vector<uint8_t>();
    EXPECT_EQ(v.front(), 10);
    EXPECT_EQ(v.back(), 21);
  }
}

TEST(Idx, CorruptFilesGiveErrorsNamingTheFile) {
  EXPECT_THAT(error_of([] { data::read_idx(tmp_path("missing.idx")); }), HasSubstr("missing.idx' does not exist"));
  auto bad_magic = idx_bytes({2}, 0);
  bad_magic[0] = 0x1f;
  write_file(tmp_path("magic.idx"), bad_magic);
  EXPECT_THAT(error_of([] { data::read_idx(tmp_path("magic.idx")); }), HasSubstr("magic.idx' has a bad magic number"));
  auto truncated = idx_bytes({4, 4}, 0);
  truncated.resize(truncated.size() - 3);
  write_file(tmp_path("short.idx"), truncated);
  EXPECT_THAT(error_of([] { data::read_idx(tmp_path("short.idx")); }), HasSubstr("short.idx' is truncated"));
  write_file(tmp_path("tiny.idx"), {0, 0});
  EXPECT_THAT(error_of([] { data::read_idx(tmp_path("tiny.idx")); }), HasSubstr("too short"));
  // a gzip stream cut in the middle
  auto big = idx_bytes({64, 64}, 0);
  gzFile g = gzopen(tmp_path("cut.gz").c_str(), "wb");
  gzwrite(g, big.data(), static_cast<unsigned>(big.size()));
  gzclose(g);
  std::filesystem::resize_file(tmp_path("cut.gz"), 40);
  std::string msg = error_of([] { data::read_idx(tmp_path("cut.gz")); });
  EXPECT_THAT(msg, HasSubstr("cut.gz"));
  EXPECT_THAT(error_of([] { data::idx_path("/nonexistent", "train", false); }), HasSubstr("no train images"));
}

TEST(Idx, FashionMnistFromDebianPackage) {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(root)) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)";
  Tensor y = data::read_idx(data::idx_path(root, "test", true));
  EXPECT_EQ(y.shape(), (Shape{10000}));
  auto v = y.to_vector<uint8_t>();
  EXPECT_EQ(*std::max_element(v.begin(), v.end()), 9);
  Tensor x = data::read_idx(data::idx_path(root, "test", false));
  EXPECT_EQ(x.shape(), (Shape{10000, 28, 28}));
}

}  // namespace
}  // namespace siam

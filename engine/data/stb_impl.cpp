// The one translation unit that compiles stb_image and stb_image_write (vendored in third_party/stb), and
// the thin wrappers engine/data uses: decode_image, write_png/bmp/jpg.
#include <cstdio>
#include <cstdlib>
#include <string>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STBI_NO_HDR       // 8-bit images only
#define STBI_NO_LINEAR
#define STB_IMAGE_STATIC  // keep the symbols private to this file
#define STB_IMAGE_IMPLEMENTATION
#include "third_party/stb/stb_image.h"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "third_party/stb/stb_image_write.h"
#pragma GCC diagnostic pop

#include "engine/data/dataset.h"

namespace siam::data {

bool probe_image(const std::string& path, int* h, int* w, int* c) {
  int x = 0, y = 0, n = 0;
  if (!stbi_info(path.c_str(), &x, &y, &n)) return false;
  if (h) *h = y;
  if (w) *w = x;
  if (c) *c = n;
  return x > 0 && y > 0 && n >= 1 && n <= 4;
}

Image decode_image(const std::string& path, int channels) {
  int x = 0, y = 0, n = 0;
  // stbi_failure_reason is a thread-local string with STBI_THREAD_LOCAL (defined by stb for C++11).
  unsigned char* p = stbi_load(path.c_str(), &x, &y, &n, 0);
  if (!p) throw DecodeError(path, "cannot decode image '" + path + "' (stb_image: " + stbi_failure_reason() + ")");
  Image img(y, x, n);
  std::copy(p, p + static_cast<size_t>(x) * y * n, img.data.begin());
  stbi_image_free(p);
  if (channels > 0 && channels != n) return convert_channels(img, channels);
  return img;
}

namespace {
void check_writable(const std::string& path, const Image& img) {
  SIAM_CHECK(img.h > 0 && img.w > 0 && img.c >= 1 && img.c <= 4, "write image '", path, "': bad shape (", img.h, ", ",
             img.w, ", ", img.c, ")");
  SIAM_CHECK(img.data.size() == static_cast<size_t>(img.h) * img.w * img.c, "write image '", path,
             "': data size does not match the shape");
}
}  // namespace

void write_png(const std::string& path, const Image& img) {
  check_writable(path, img);
  SIAM_CHECK(stbi_write_png(path.c_str(), img.w, img.h, img.c, img.data.data(), img.w * img.c) != 0,
             "write_png: cannot write '", path, "'");
}

void write_bmp(const std::string& path, const Image& img) {
  check_writable(path, img);
  SIAM_CHECK(stbi_write_bmp(path.c_str(), img.w, img.h, img.c, img.data.data()) != 0, "write_bmp: cannot write '",
             path, "'");
}

void write_jpg(const std::string& path, const Image& img, int quality) {
  check_writable(path, img);
  SIAM_CHECK(stbi_write_jpg(path.c_str(), img.w, img.h, img.c, img.data.data(), quality) != 0,
             "write_jpg: cannot write '", path, "'");
}

}  // namespace siam::data

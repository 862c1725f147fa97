#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/io/json.h"

namespace siam::io {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // as the reference implementation

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kDTypes[] = {{"F32", DType::f32}, {"F64", DType::f64}, {"BF16", DType::bf16}, {"F16", DType::f16},
                                 {"I32", DType::i32}, {"I64", DType::i64}, {"U8", DType::u8},     {"BOOL", DType::u8}};

bool dtype_from_safetensors(const std::string& name, DType& out) {
  for (const auto& d : kDTypes)
    if (name == d.name) {
      out = d.dtype;
      return true;
    }
  return false;
}

std::string errno_str() { return std::strerror(errno); }

}  // namespace

const char* safetensors_dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.dtype == t) return d.name;
  SIAM_FAIL("safetensors: no name for dtype ", dtype_name(t));
}

Tensor SafetensorsContents::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  return Tensor();
}

Tensor SafetensorsContents::get(const std::string& name) const {
  Tensor t = find(name);
  SIAM_CHECK(t.defined(), path, ": no tensor named '", name, "' (the file holds ", tensors.size(), " tensors)");
  return t;
}

void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces) {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp_name = ".";
  tmp_name += target.filename().string();
  tmp_name += ".tmp.";
  tmp_name += std::to_string(::getpid());
  std::string tmp = (dir / tmp_name).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SIAM_CHECK(fd >= 0, path, ": cannot create temporary file '", tmp, "': ", errno_str());
  auto fail = [&](const std::string& what) {
    std::string err = errno_str();
    ::close(fd);
    ::unlink(tmp.c_str());
    SIAM_FAIL(path, ": ", what, ": ", err);
  };
  for (const auto& [data, size] : pieces) {
    const char* p = static_cast<const char*>(data);
    size_t left = size;
    while (left > 0) {
      ssize_t n = ::write(fd, p, std::min<size_t>(left, 1u << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write failed");
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0) fail("fsync failed");
  if (::close(fd) != 0) {
    std::string err = errno_str();
    ::unlink(tmp.c_str());
    SIAM_FAIL(path, ": close failed: ", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string err = errno_str();
    ::unlink(tmp.c_str());
    SIAM_FAIL(path, ": cannot rename the temporary file into place: ", err);
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // best effort: makes the rename itself durable
    ::fsync(dfd);
    ::close(dfd);
  }
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata,
                      const SaveOptions& options) {
  std::vector<Tensor> out;  // contiguous CPU tensors, one per entry
  std::set<std::string> names;
  out.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    SIAM_CHECK(!name.empty(), path, ": save_safetensors: a tensor has an empty name");
    SIAM_CHECK(name != "__metadata__", path, ": save_safetensors: '__metadata__' is reserved");
    SIAM_CHECK(names.insert(name).second, path, ": save_safetensors: duplicate tensor name '", name, "'");
    SIAM_CHECK(t.defined(), path, ": save_safetensors: tensor '", name, "' is undefined");
    Tensor c = t.detach();
    if (!c.is_cpu()) c = c.to(kCPU);
    if (options.floating_dtype && is_floating(c.dtype()) && c.dtype() != *options.floating_dtype)
      c = c.to(*options.floating_dtype);
    out.push_back(c.contiguous());
  }
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (!first) header += ',';
      header += json_quote(k);
      header += ':';
      header += json_quote(v);
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = out[i];
    if (header.size() > 1) header += ',';
    header += json_quote(tensors[i].first);
    header += ":{\"dtype\":\"";
    header += safetensors_dtype_name(t.dtype());
    header += "\",\"shape\":[";
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (d) header += ',';
      header += std::to_string(t.size(d));
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.nbytes()) + "]}";
    offset += t.nbytes();
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  const uint64_t n = header.size();
  std::vector<std::pair<const void*, size_t>> pieces;
  pieces.emplace_back(&n, 8);
  pieces.emplace_back(header.data(), header.size());
  for (const Tensor& t : out)
    if (t.nbytes() > 0) pieces.emplace_back(t.raw_data(), t.nbytes());
  write_file_atomic(path, pieces);
}

SafetensorsContents load_safetensors(const std::string& path) {
  std::error_code ec;
  SIAM_CHECK(std::filesystem::is_regular_file(path, ec), path, ": no such file (or not a regular file)");
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  SIAM_CHECK(!ec, path, ": cannot read the file size: ", ec.message());
  std::ifstream in(path, std::ios::binary);
  SIAM_CHECK(in, path, ": cannot open: ", errno_str());
  SIAM_CHECK(file_size >= 8, path, ": not a safetensors file: ", file_size,
             " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  SIAM_CHECK(in, path, ": cannot read the header length");
  SIAM_CHECK(n <= file_size - 8, path, ": corrupted or truncated: the header length is ", n, " bytes but only ",
             file_size - 8, " bytes follow it");
  SIAM_CHECK(n <= kMaxHeaderBytes, path, ": header length ", n, " exceeds the ", kMaxHeaderBytes, "-byte limit");
  SIAM_CHECK(n >= 2, path, ": header of ", n, " bytes cannot hold a JSON object");
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  SIAM_CHECK(in, path, ": cannot read the ", n, "-byte header");
  JsonValue root = parse_json(header, path + ": header");
  SIAM_CHECK(root.kind == JsonValue::Kind::object, path, ": the header is not a JSON object");

  const uint64_t data_size = file_size - 8 - n;
  SafetensorsContents res;
  res.path = path;
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (const auto& [name, v] : root.members) {
    if (name == "__metadata__") {
      SIAM_CHECK(v.kind == JsonValue::Kind::object, path, ": __metadata__ is not an object");
      for (const auto& [k, mv] : v.members) {
        SIAM_CHECK(mv.kind == JsonValue::Kind::string, path, ": __metadata__ value of '", k, "' is not a string");
        res.metadata[k] = mv.str;
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    SIAM_CHECK(v.kind == JsonValue::Kind::object, where, ": its entry is not an object");
    const JsonValue* dt = v.member("dtype");
    const JsonValue* sh = v.member("shape");
    const JsonValue* off = v.member("data_offsets");
    SIAM_CHECK(dt && dt->kind == JsonValue::Kind::string, where, ": missing or non-string \"dtype\"");
    SIAM_CHECK(sh && sh->kind == JsonValue::Kind::array, where, ": missing or non-array \"shape\"");
    SIAM_CHECK(off && off->kind == JsonValue::Kind::array && off->items.size() == 2, where,
               ": \"data_offsets\" must be an array [begin, end]");
    Entry e;
    e.name = name;
    SIAM_CHECK(dtype_from_safetensors(dt->str, e.dtype), where, ": unsupported dtype '", dt->str,
               "' (siam reads F32, F64, BF16, F16, I32, I64, U8, BOOL)");
    SIAM_CHECK(sh->items.size() <= static_cast<size_t>(kMaxDims), where, ": ", sh->items.size(),
               " dims, more than siam's ", kMaxDims);
    uint64_t numel = 1;
    for (const auto& d : sh->items) {
      SIAM_CHECK(d.kind == JsonValue::Kind::number && d.is_integer && d.integer >= 0, where,
                 ": shape entries must be non-negative integers");
      SIAM_CHECK(d.integer == 0 || numel <= (uint64_t{1} << 62) / static_cast<uint64_t>(d.integer), where,
                 ": shape is too large");
      numel *= static_cast<uint64_t>(d.integer);
      e.shape.push_back(d.integer);
    }
    for (const auto& o : off->items)
      SIAM_CHECK(o.kind == JsonValue::Kind::number && o.is_integer && o.integer >= 0, where,
                 ": data_offsets must be non-negative integers");
    e.begin = static_cast<uint64_t>(off->items[0].integer);
    e.end = static_cast<uint64_t>(off->items[1].integer);
    SIAM_CHECK(e.begin <= e.end, where, ": data_offsets [", e.begin, ", ", e.end, "] run backwards");
    SIAM_CHECK(e.end <= data_size, path, ": corrupted or truncated: tensor '", name, "' needs bytes [", e.begin, ", ",
               e.end, ") of the data section, which holds only ", data_size, " bytes");
    const uint64_t want = numel * dtype_size(e.dtype);
    SIAM_CHECK(e.end - e.begin == want, where, ": data_offsets [", e.begin, ", ", e.end, ") span ", e.end - e.begin,
               " bytes but shape ", shape_str(e.shape), " of ", dt->str, " needs ", want);
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t at = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    SIAM_CHECK(e.begin >= at, path, ": corrupted: tensor '", e.name, "' (bytes [", e.begin, ", ", e.end,
               ")) overlaps tensor '", entries[i - 1].name, "' (bytes [", entries[i - 1].begin, ", ",
               entries[i - 1].end, "))");
    SIAM_CHECK(e.begin == at, path, ": corrupted: a gap of ", e.begin - at, " bytes before tensor '", e.name,
               "' in the data section");
    at = e.end;
  }
  SIAM_CHECK(at == data_size, path, ": corrupted: the data section holds ", data_size, " bytes but its tensors use ",
             at);
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, TensorOptions(e.dtype));
    if (t.nbytes() > 0) {
      in.seekg(static_cast<std::streamoff>(8 + n + e.begin));
      in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(t.nbytes()));
      SIAM_CHECK(in, path, ": read failed for tensor '", e.name, "' (file truncated while reading?)");
    }
    res.tensors.emplace_back(e.name, t);
  }
  return res;
}

}  // namespace siam::io

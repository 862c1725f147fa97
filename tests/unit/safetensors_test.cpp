// safetensors I/O: bitwise round trips for every dtype, metadata, conversion on save, and the corrupted or
// truncated files (written by the test) that must give a siam::Error naming the file, never a crash.
#include "tests/unit/test_util.h"
#include "engine/io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/core/random.h"
#include "engine/io/json.h"

namespace siam {
namespace {

using test::error_of;
std::string tmp_path(const std::string& name) { return test::tmp_path("safetensors", name); }

using ::testing::HasSubstr;



std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void write_all(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
// A file with the given JSON header and `data_bytes` bytes of data.
std::string make_file(const std::string& name, const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  s += header + std::string(data_bytes, '\x01');
  std::string p = tmp_path(name);
  write_all(p, s);
  return p;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(), a.nbytes()) == 0;
}

TEST(Safetensors, RoundTripIsBitwiseForEveryDtype) {
  manual_seed(3);
  Tensor f = randn({3, 4, 5});
  io::NamedTensors ts = {{"f32", f},
                         {"f64", randn({7}, DType::f64)},
                         {"bf16", randn({2, 3}).to(DType::bf16)},
                         {"f16", randn({5, 1}).to(DType::f16)},
                         {"i32", from_vector({1, -2, 3}, {3}, DType::i32)},
                         {"i64", from_vector_i64({-(int64_t{1} << 40), 7}, {2})},
                         {"u8", from_vector({0, 255, 9}, {3}, DType::u8)},
                         {"scalar", full({}, 2.5)},
                         {"empty", zeros({0, 3})},
                         {"strided", f.transpose(0, 2)},
                         {"name with \"quotes\" and \\", ones({1})}};
  std::string p = tmp_path("all.safetensors");
  io::save_safetensors(p, ts, {{"epoch", "3"}, {"note", "a\nb"}});
  io::SafetensorsContents c = io::load_safetensors(p);
  ASSERT_EQ(c.tensors.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_EQ(c.tensors[i].first, ts[i].first);  // written in order, read back in data order
    EXPECT_TRUE(bitwise_equal(c.tensors[i].second, ts[i].second)) << ts[i].first;
  }
  EXPECT_EQ(c.metadata.at("epoch"), "3");
  EXPECT_EQ(c.metadata.at("note"), "a\nb");
  EXPECT_TRUE(c.get("f32").defined());
  EXPECT_THAT(error_of([&] { c.get("nope"); }), HasSubstr("all.safetensors: no tensor named 'nope'"));
  // The data section starts 8-byte aligned.
  uint64_t n = 0;
  std::string bytes = read_all(p);
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, ConvertsFloatingTensorsOnSave) {
  Tensor f = from_vector({1.0, 1.0 / 3.0, -1e-3}, {3});
  std::string p = tmp_path("bf16.safetensors");
  io::save_safetensors(p, {{"w", f}, {"n", from_vector_i64({5}, {1})}}, {}, {.floating_dtype = DType::bf16});
  auto c = io::load_safetensors(p);
  EXPECT_EQ(c.get("w").dtype(), DType::bf16);
  EXPECT_EQ(c.get("n").dtype(), DType::i64);
  EXPECT_TRUE(bitwise_equal(c.get("w"), f.to(DType::bf16)));
}

TEST(Safetensors, AtomicWriteLeavesNoTemporaryFile) {
  std::string p = tmp_path("atomic.safetensors");
  io::save_safetensors(p, {{"a", ones({2})}});
  io::save_safetensors(p, {{"a", zeros({3})}});  // replaces
  EXPECT_EQ(io::load_safetensors(p).get("a").numel(), 3);
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(p).parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  EXPECT_THAT(error_of([] {
                io::save_safetensors("/nonexistent-dir/x.safetensors", {{"a", ones({1})}});
              }),
              HasSubstr("/nonexistent-dir/x.safetensors: cannot create temporary file"));
}

TEST(Safetensors, SaveRejectsBadNames) {
  std::string p = tmp_path("bad.safetensors");
  EXPECT_THAT(error_of([&] {
                io::save_safetensors(p, {{"a", ones({1})}, {"a", ones({1})}});
              }),
              HasSubstr("duplicate tensor name 'a'"));
  EXPECT_THAT(error_of([&] { io::save_safetensors(p, {{"", ones({1})}}); }), HasSubstr("empty name"));
  EXPECT_THAT(error_of([&] { io::save_safetensors(p, {{"u", Tensor()}}); }), HasSubstr("'u' is undefined"));
}

TEST(Safetensors, TruncatedFilesGiveErrorsNamingTheFile) {
  std::string good = tmp_path("good.safetensors");
  io::save_safetensors(good, {{"a", randn({64})}, {"b", randn({16})}});
  std::string bytes = read_all(good);
  // Every prefix of the file: an error naming it, never a crash.
  for (size_t cut : {size_t{0}, size_t{4}, size_t{8}, size_t{20}, bytes.size() - 300, bytes.size() - 1}) {
    std::string p = tmp_path("cut" + std::to_string(cut) + ".safetensors");
    write_all(p, bytes.substr(0, cut));
    std::string msg = error_of([&] { io::load_safetensors(p); });
    EXPECT_THAT(msg, HasSubstr(p)) << "cut at " << cut;
  }
  std::string p = tmp_path("trunc_data.safetensors");
  write_all(p, bytes.substr(0, bytes.size() - 1));
  EXPECT_THAT(error_of([&] { io::load_safetensors(p); }), HasSubstr("corrupted or truncated"));
  EXPECT_THAT(error_of([] { io::load_safetensors(tmp_path("missing.safetensors")); }),
              HasSubstr("missing.safetensors: no such file"));
}

TEST(Safetensors, HeaderLengthPastEndOfFile) {
  std::string s(8, '\0');
  uint64_t n = 1000;
  std::memcpy(s.data(), &n, 8);
  s += "{}";
  std::string p = tmp_path("hdrlen.safetensors");
  write_all(p, s);
  EXPECT_THAT(error_of([&] { io::load_safetensors(p); }),
              HasSubstr("hdrlen.safetensors: corrupted or truncated: the header length is 1000 bytes but only 2"));
  n = ~uint64_t{0};
  std::memcpy(s.data(), &n, 8);
  write_all(p, s);
  EXPECT_THAT(error_of([&] { io::load_safetensors(p); }), HasSubstr("header length"));
}

TEST(Safetensors, BadJson) {
  for (const char* h : {"{", "{\"a\":}", "[1,2]", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}x",
                        "{\"a\" {}}", "{\"a\":\"\\q\"}", "\"abc", "{\"a\":1,\"a\":2}", "nul"}) {
    std::string p = make_file("json.safetensors", h, 4);
    std::string msg = error_of([&] { io::load_safetensors(p); });
    EXPECT_THAT(msg, HasSubstr("json.safetensors")) << h;
    EXPECT_THAT(msg, ::testing::AnyOf(HasSubstr("bad JSON"), HasSubstr("not a JSON object"),
                                      HasSubstr("cannot hold a JSON object")))
        << h;
  }
  // Deep nesting is refused, not recursed into until the stack overflows.
  std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THAT(error_of([&] { io::load_safetensors(make_file("deep.safetensors", deep, 0)); }),
              HasSubstr("nesting deeper than 64"));
}

TEST(Safetensors, BadEntries) {
  auto err = [](const std::string& header, size_t data) {
    return error_of([&] { io::load_safetensors(make_file("entry.safetensors", header, data)); });
  };
  EXPECT_THAT(err(R"({"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})", 1), HasSubstr("unsupported dtype 'Q8'"));
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), HasSubstr("non-negative"));
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), HasSubstr("needs 8"));
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4), HasSubstr("run backwards"));
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[1]}})", 4), HasSubstr("data_offsets"));
  EXPECT_THAT(err(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), HasSubstr("dtype"));
  EXPECT_THAT(err(R"({"a":[1]})", 4), HasSubstr("tensor 'a': its entry is not an object"));
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[1e3],"data_offsets":[0,4]}})", 4),
              HasSubstr("non-negative integers"));
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", 4),
              HasSubstr("too large"));
  // Offsets out of range.
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
              HasSubstr("entry.safetensors: corrupted or truncated: tensor 'a' needs bytes [0, 16)"));
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}})", 4),
              HasSubstr("non-negative integers"));
  // Overlapping offsets.
  EXPECT_THAT(
      err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12),
      HasSubstr("overlaps tensor 'a'"));
  // A gap, and bytes no tensor uses.
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), HasSubstr("gap of 4 bytes"));
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8), HasSubstr("tensors use 4"));
  EXPECT_THAT(err(R"({"__metadata__":{"k":1}})", 0), HasSubstr("not a string"));
  // A good minimal file is read.
  auto c =
      io::load_safetensors(make_file("ok.safetensors",
                                     R"({"__metadata__":{"k":"v"},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})"
                                     "  ",
                                     2));
  EXPECT_EQ(c.metadata.at("k"), "v");
  EXPECT_EQ(c.get("a").to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  std::string good = tmp_path("fuzz_src.safetensors");
  io::save_safetensors(good, {{"w", randn({4, 3})}, {"b", randn({3})}}, {{"k", "v"}});
  const std::string bytes = read_all(good);
  uint64_t state = 12345;
  auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull, state >> 33; };
  std::string p = tmp_path("fuzz.safetensors");
  for (int trial = 0; trial < 400; ++trial) {
    std::string b = bytes;
    int flips = 1 + static_cast<int>(next() % 4);
    for (int k = 0; k < flips; ++k) b[next() % b.size()] = static_cast<char>(next());
    write_all(p, b);
    try {
      io::load_safetensors(p);
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("fuzz.safetensors"));
    }
  }
}

TEST(Json, ParsesEscapesAndNumbers) {
  auto v = io::parse_json(R"( {"s":"a\u00e9\ud83d\ude00\t","n":-12,"x":1.5e2,"t":true,"z":null,"a":[]} )", "t");
  EXPECT_EQ(v.member("s")->str, "a\xc3\xa9\xf0\x9f\x98\x80\t");
  EXPECT_TRUE(v.member("n")->is_integer);
  EXPECT_EQ(v.member("n")->integer, -12);
  EXPECT_FALSE(v.member("x")->is_integer);
  EXPECT_DOUBLE_EQ(v.member("x")->num, 150.0);
  EXPECT_TRUE(v.member("t")->b);
  EXPECT_EQ(v.member("z")->kind, io::JsonValue::Kind::null);
  EXPECT_EQ(io::json_quote("a\"\\\n\x01"), "\"a\\\"\\\\\\n\\u0001\"");
}

}  // namespace
}  // namespace siam

// Tensor geometry, views and their aliasing, copies, dtype conversion, printing and the error messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "tests/unit/test_util.h"
#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linalg.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/tensor.h"

namespace siam {
namespace {

using test::error_of;

using ::testing::HasSubstr;


TEST(Tensor, ShapeStridesAndAlignment) {
  Tensor t = zeros({2, 3, 4});
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(t.numel(), 24);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  EXPECT_EQ(t.size(-1), 4);
}

TEST(Tensor, ViewsAliasStorage) {
  Tensor t = arange(0, 12, 1, DType::f32).reshape({3, 4});
  Tensor tr = t.transpose(0, 1);
  Tensor row = t.select(0, 1);
  Tensor col = t.narrow(1, 2, 1);
  Tensor sl = t.slice(1, 0, 4, 2);
  for (const Tensor* v : {&tr, &row, &col, &sl}) EXPECT_EQ(v->storage().get(), t.storage().get());
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_EQ(row.to_vector<float>(), (std::vector<float>{4, 5, 6, 7}));
  EXPECT_EQ(sl.to_vector<float>(), (std::vector<float>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(tr.to_vector<float>(), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  // a write through a view shows in the base
  row.fill_(-1);
  EXPECT_EQ(t.to_vector<float>()[5], -1.0f);
  col.fill_(9);
  EXPECT_EQ(t.to_vector<float>()[2], 9.0f);
  EXPECT_EQ(t.to_vector<float>()[10], 9.0f);
  // contiguous() copies a non-contiguous view, returns the same tensor otherwise
  EXPECT_NE(tr.contiguous().storage().get(), t.storage().get());
  EXPECT_TRUE(t.contiguous().same(t));
}

TEST(Tensor, ExpandSqueezePermute) {
  Tensor v = from_vector({1, 2, 3}, {3, 1});
  Tensor e = v.expand({2, 3, 4});
  EXPECT_EQ(e.strides()[0], 0);
  EXPECT_EQ(e.strides()[2], 0);
  EXPECT_EQ(e.storage().get(), v.storage().get());
  EXPECT_EQ(sum(e).item(), 2 * 4 * 6);
  EXPECT_EQ(v.squeeze().shape(), (Shape{3}));
  EXPECT_EQ(v.unsqueeze(0).shape(), (Shape{1, 3, 1}));
  Tensor p = zeros({2, 3, 4}).permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_EQ(zeros({2, 3, 4}).flatten(1).shape(), (Shape{2, 12}));
}

TEST(Tensor, ReshapeCopiesOnlyWhenNeeded) {
  Tensor t = zeros({4, 6});
  EXPECT_EQ(t.reshape({2, 12}).storage().get(), t.storage().get());
  Tensor tr = t.t();
  EXPECT_NE(tr.reshape({24}).storage().get(), t.storage().get());
  EXPECT_THAT(error_of([&] { tr.view({24}); }), HasSubstr("without a copy"));
}

TEST(Tensor, DtypeConversions) {
  Tensor t = from_vector({1.5, -2.25, 65504, 1e-8, 3.14159}, {5});
  auto bf = t.to(DType::bf16).to(DType::f32).to_vector<float>();
  EXPECT_EQ(bf[0], 1.5f);
  EXPECT_EQ(bf[1], -2.25f);
  EXPECT_NEAR(bf[4], 3.14159f, 0.01f);
  auto h = t.to(DType::f16).to(DType::f32).to_vector<float>();
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_NEAR(h[3], 1e-8f, 6e-8f);  // subnormal range of f16
  EXPECT_NEAR(h[4], 3.14159f, 0.002f);
  auto i = t.to(DType::i64).to_vector<int64_t>();
  EXPECT_EQ(i[1], -2);
  EXPECT_EQ(t.to(DType::f64).dtype(), DType::f64);
}

TEST(Tensor, HalfConversionEdgeCases) {
  EXPECT_EQ(f32_to_f16_bits(65520.0f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(f32_to_f16_bits(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16_bits(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16_bits(5.9604645e-08f), 0x0001);  // smallest subnormal
  EXPECT_TRUE(std::isnan(f16_bits_to_f32(f32_to_f16_bits(NAN))));
  EXPECT_EQ(f16_bits_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f32_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16_bits(1.00390625f), 0x3f80);  // halfway, rounds to even
  EXPECT_EQ(f32_to_bf16_bits(1.01171875f), 0x3f82);  // halfway, rounds to even (up)
  EXPECT_TRUE(std::isnan(bf16_bits_to_f32(f32_to_bf16_bits(NAN))));
  // every f16 value survives f16 -> f32 -> f16
  for (uint32_t b = 0; b < 0x10000; ++b) {
    uint16_t h = static_cast<uint16_t>(b);
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaN payloads
    ASSERT_EQ(f32_to_f16_bits(f16_bits_to_f32(h)), h) << std::hex << b;
  }
}

TEST(Tensor, Factories) {
  EXPECT_EQ(eye(3).to_vector<float>(), (std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1}));
  EXPECT_EQ(eye(2, 3).shape(), (Shape{2, 3}));
  EXPECT_EQ(arange(5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25).numel(), 4);
  EXPECT_EQ(full({2}, 7.0, DType::i32).to_vector<int32_t>(), (std::vector<int32_t>{7, 7}));
  EXPECT_EQ(ones({2, 2}).to_vector<float>(), (std::vector<float>(4, 1.0f)));
}

TEST(Tensor, PrintsSmallTensors) {
  Tensor t = from_vector({1, 2, 3, 4}, {2, 2});
  std::string s = t.str();
  EXPECT_THAT(s, HasSubstr("[[1, 2]"));
  EXPECT_THAT(s, HasSubstr("shape=[2, 2]"));
  EXPECT_THAT(zeros({100}).str(), HasSubstr("..."));
}

TEST(Tensor, ErrorsNameOpAndShapes) {
  EXPECT_THAT(error_of([] { add(zeros({2, 3}), zeros({4})); }), HasSubstr("add: shapes [2, 3] and [4]"));
  EXPECT_THAT(error_of([] { matmul(zeros({2, 3}), zeros({4, 2})); }), HasSubstr("matmul: inner dims differ, [2, 3] @ [4, 2]"));
  EXPECT_THAT(error_of([] { add(zeros({2}), zeros({2}, DType::f64)); }), HasSubstr("add: dtype mismatch"));
  EXPECT_THAT(error_of([] { zeros({2, 3}).view({4, 2}); }), HasSubstr("view: shape [4, 2] does not match"));
  EXPECT_THAT(error_of([] { zeros({2, 3}).narrow(1, 2, 2); }), HasSubstr("narrow: range [2, 4) out of bounds"));
  EXPECT_THAT(error_of([] { zeros({2, 3}).transpose(0, 2); }), HasSubstr("transpose: dim 2 out of range"));
  EXPECT_THAT(error_of([] { zeros({2, 3}).expand({4, 3}); }), HasSubstr("expand: cannot expand shape [2, 3]"));
  EXPECT_THAT(error_of([] { zeros({2}).item(); }), HasSubstr("item(): tensor of shape [2]"));
  EXPECT_THAT(error_of([] { exp(zeros({2}, DType::i64)); }), HasSubstr("exp: expects an f32 or f64 tensor"));
  EXPECT_THAT(error_of([] { cat({zeros({2, 3}), zeros({2, 4})}, 0); }), HasSubstr("cat: tensor 1 has shape [2, 4]"));
  EXPECT_THAT(error_of([] { gather(zeros({2, 3}), 1, from_vector_i64({0, 3}, {2, 1})); }),
              HasSubstr("gather: index 3 out of range [0, 3)"));
  EXPECT_THAT(error_of([] { zeros({2}, TensorOptions(Device("cuda:0"))); }), HasSubstr("cuda:0"));
  EXPECT_THAT(error_of([] { Device("gpu"); }), HasSubstr("bad device 'gpu'"));
  EXPECT_THAT(error_of([] { dtype_from_name("float8"); }), HasSubstr("unknown dtype 'float8'"));
}

TEST(Tensor, CopyBroadcastsAndConverts) {
  Tensor dst = zeros({2, 3}, DType::f64);
  dst.copy_(from_vector({1, 2, 3}, {3}));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{1, 2, 3, 1, 2, 3}));
}

TEST(Ops, ReductionValues) {
  Tensor t = from_vector({1, 5, 3, 4, 2, 6}, {2, 3});
  EXPECT_EQ(sum(t, {1}).to_vector<float>(), (std::vector<float>{9, 12}));
  EXPECT_EQ(max(t, {0}).to_vector<float>(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(argmax(t, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(argmax(t, 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_NEAR(var(t, {1}).to_vector<float>()[0], 4.0f, 1e-6);
  EXPECT_NEAR(logsumexp(from_vector({1000, 1000}, {2}), 0).item(), 1000 + std::log(2.0), 1e-3);
  auto sm = softmax(from_vector({1, 2, 3}, {3}), 0).to_vector<float>();
  EXPECT_NEAR(sm[0] + sm[1] + sm[2], 1.0f, 1e-6);
}

TEST(Ops, LeadingDimReductionsMatchTheTransposedPath) {
  // sum/max over leading dims of a contiguous tensor take the in-place column path; the same reduction of
  // a non-contiguous copy takes the transpose path; both must agree (and the sum must be deterministic).
  Tensor x = uniform({37, 3, 530}, -1, 1);
  Tensor xn = x.permute({2, 0, 1}).contiguous().permute({1, 2, 0});  // same values, non-contiguous
  ASSERT_FALSE(xn.is_contiguous());
  for (auto dims : std::vector<std::vector<int64_t>>{{0}, {0, 1}}) {
    auto a = sum(x, dims).to_vector<float>(), b = sum(xn, dims).to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << i;
    EXPECT_EQ(max(x, dims).to_vector<float>(), max(xn, dims).to_vector<float>());
  }
  Tensor big = uniform({3000000}, -1, 1);
  EXPECT_EQ(sum(big).item(), sum(big).item());
}

TEST(Ops, DropoutKeepsExpectation) {
  Tensor x = ones({100000});
  Tensor y = dropout(x, 0.25, true);
  double zeros_frac = 0;
  for (float v : y.to_vector<float>()) {
    if (v == 0) zeros_frac += 1;
    else EXPECT_NEAR(v, 1.0 / 0.75, 1e-6);
  }
  EXPECT_NEAR(zeros_frac / 100000, 0.25, 0.01);
  EXPECT_TRUE(dropout(x, 0.5, false).same(x));
}

}  // namespace
}  // namespace siam

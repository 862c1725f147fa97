// CUDA-vs-CPU parity for every op the registry marks cuda = true (label cuda). Each op has cases in the
// table below; a case runs its function on CPU inputs and on the same inputs moved to cuda:0, in f32 and f64,
// in three device layouts (tests/cuda/parity.h): contiguous, transposed (each input of rank >= 2 materialized
// transposed and viewed back) and strided (each input a step-2 slice at storage offset 1, rank 0 and 1 too;
// in f32 only, where a misread element shows as well: the gaps hold NaN). It compares the outputs and the
// gradients of every floating input (backward with the same random output gradient on both devices).
// Tolerances depend on the dtype (f32: the CUDA libm and the summation order differ from the CPU's; f64: near
// exact).
// CudaParity.EveryCudaKernelHasAParityTest (cuda_runtime_test.cpp) checks this table covers the registry.
// Every test skips with a reason where no CUDA device is present.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/norm.h"
#include "engine/ops/reduce.h"
#include "engine/ops/registry.h"
#include "engine/ops/shape.h"
#include "engine/tensor.h"
#include "tests/cuda/cuda_test.h"
#include "tests/cuda/parity.h"

namespace siam::test {

namespace {

using In = std::vector<Tensor>;
using Fn = std::function<Tensor(const In&)>;

Tensor r(const Shape& s, double lo = -1.0, double hi = 1.0) { return uniform(s, lo, hi, TensorOptions(DType::f64)); }
Tensor idx(const std::vector<int64_t>& v, const Shape& s) { return from_vector_i64(v, s); }

std::vector<ParityCase> binary_cases(Tensor (*f)(const Tensor&, const Tensor&), double lo = -1.0, double hi = 1.0) {
  Fn fn = [f](const In& v) { return f(v[0], v[1]); };
  return {
      {"same shape [3,4]", {r({3, 4}, lo, hi), r({3, 4}, lo, hi)}, fn},
      {"large [1000,1027] (vector path and tail)", {r({1000, 1027}, lo, hi), r({1000, 1027}, lo, hi)}, fn},
      {"broadcast [3,1] x [4]", {r({3, 1}, lo, hi), r({4}, lo, hi)}, fn},
      {"bias [256,130] x [130]", {r({256, 130}, lo, hi), r({130}, lo, hi)}, fn},
      {"broadcast [2,1,3] x [4,1]", {r({2, 1, 3}, lo, hi), r({4, 1}, lo, hi)}, fn},
      {"scalar tensor [] x [517]", {r({}, lo, hi), r({517}, lo, hi)}, fn},
  };
}

std::vector<ParityCase> unary_cases(std::function<Tensor(const Tensor&)> f, double lo = -1.0, double hi = 1.0) {
  Fn fn = [f](const In& v) { return f(v[0]); };
  return {
      {"[3,4]", {r({3, 4}, lo, hi)}, fn},
      {"[513,1031] (vector path and tail)", {r({513, 1031}, lo, hi)}, fn},
      {"[]", {r({}, lo, hi)}, fn},
  };
}

std::map<std::string, ParityCases> make_table() {
  std::map<std::string, ParityCases> t;
  using B = Tensor (*)(const Tensor&, const Tensor&);
  t["add"] = [=] { return std::vector<ParityCase>(binary_cases(static_cast<B>(&add))); };
  // layer norm (kernels/cuda/layer_norm.h): a warp per row up to 1024 features, the block beyond; over 1 or 2
  // trailing dims; with and without the affine parameters
  t["layer_norm"] = [=] {
    Fn last = [](const In& v) { return layer_norm(v[0], {v[0].size(-1)}, v[1], v[2], 1e-5); };
    Fn two = [](const In& v) { return layer_norm(v[0], {v[0].size(-2), v[0].size(-1)}, Tensor(), Tensor(), 1e-3); };
    return std::vector<ParityCase>{
        {"[6,40] affine", {r({6, 40}, -2.0, 3.0), r({40}, 0.5, 1.5), r({40})}, last},
        {"[3,5,1500] affine (block per row)", {r({3, 5, 1500}, -2.0, 3.0), r({1500}, 0.5, 1.5), r({1500})}, last},
        {"[300,33] affine (many rows)", {r({300, 33}), r({33}, 0.5, 1.5), r({33})}, last},
        {"[4,3,7] over 2 dims, no affine", {r({4, 3, 7}, -2.0, 3.0)}, two},
    };
  };
  t["sub"] = [=] { return std::vector<ParityCase>(binary_cases(static_cast<B>(&sub))); };
  t["mul"] = [=] { return std::vector<ParityCase>(binary_cases(static_cast<B>(&mul))); };
  t["div"] = [=] { return std::vector<ParityCase>(binary_cases(static_cast<B>(&div), 0.5, 2.0)); };
  t["pow"] = [=] { return std::vector<ParityCase>(binary_cases(static_cast<B>(&pow), 0.5, 2.0)); };
  t["maximum"] = [=] { return std::vector<ParityCase>(binary_cases(&maximum)); };
  t["minimum"] = [=] { return std::vector<ParityCase>(binary_cases(&minimum)); };
  t["add_scalar"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return add(x, 0.7); })); };
  t["mul_scalar"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return mul(x, -1.3); })); };
  t["rsub_scalar"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return rsub(2.0, x); })); };
  t["rdiv_scalar"] = [=] {
    return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return rdiv(2.0, x); }, 0.5, 2.0));
  };
  t["pow_scalar"] = [] {
    auto v = unary_cases([](const Tensor& x) { return pow(x, 2.5); }, 0.5, 2.0);
    for (auto& c : unary_cases([](const Tensor& x) { return square(x); })) v.push_back(c);
    return v;
  };
  t["neg"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return neg(x); })); };
  t["exp"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return exp(mul(x, 5.0)); })); };
  t["log"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return log(x); }, 0.2, 3.0)); };
  t["sqrt"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return sqrt(x); }, 0.2, 3.0)); };
  t["rsqrt"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return rsqrt(x); }, 0.2, 3.0)); };
  t["abs"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return abs(x); })); };
  t["clamp"] = [=] {
    return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return clamp(x, -0.3, 0.4); }));
  };
  t["clamp_min"] = [=] {
    return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return clamp_min(x, -0.3); }));
  };
  // sign has no gradient (the output does not require one): outputs only
  t["sign"] = [=] {
    auto v = unary_cases([](const Tensor& x) { return sign(x); });
    for (auto& c : v) c.grad = false;
    v.push_back({"zeros and signed values [6]",
                 {from_vector({0.0, -0.0, 2.5, -1e-30, 1e-300, -7.0}, {6}, TensorOptions(DType::f64))},
                 [](const In& x) { return sign(x[0]); },
                 false});
    return v;
  };
  t["relu"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return relu(x); })); };
  t["gelu"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return gelu(mul(x, 3.0)); })); };
  t["sigmoid"] = [=] {
    return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return sigmoid(mul(x, 8.0)); }));
  };
  t["tanh"] = [=] { return std::vector<ParityCase>(unary_cases([](const Tensor& x) { return tanh(mul(x, 3.0)); })); };
  t["where"] = [=] {
    return std::vector<ParityCase>({
        {"broadcast cond [3,1]",
         {r({3, 1}), r({3, 4}), r({4})},
         [](const In& v) { return where(gt(v[0], 0.0), v[1], v[2]); }},
        {"[300,70]",
         {r({300, 70}), r({300, 70}), r({300, 70})},
         [](const In& v) { return where(lt(v[0], 0.1), v[1], v[2]); }},
    });
  };
  t["compare"] = [=] {
    return std::vector<ParityCase>({
        {"gt/lt/ge/le/eq as f64 [40,33] x [33]",
         {r({40, 33}), r({33})},
         [](const In& v) {
           Tensor b = v[1];
           return add(add(gt(v[0], b).to(v[0].dtype()), lt(v[0], b).to(v[0].dtype())),
                      add(add(ge(v[0], v[0]).to(v[0].dtype()), le(v[0], b).to(v[0].dtype())),
                          eq(v[0], v[0]).to(v[0].dtype())));
         },
         /*grad=*/false},
    });
  };

  // reductions and the softmax family: short rows (warp per row), long rows (block per row), few very long
  // rows (split rows), leading reduced dims (reduce_outer, split over rows)
  auto reduce_cases = [](std::function<Tensor(const Tensor&, const std::vector<int64_t>&)> f) {
    return std::vector<ParityCase>{
        {"all of [3,4]", {r({3, 4})}, [f](const In& v) { return f(v[0], {}); }},
        {"dim 1 of [300,10]", {r({300, 10})}, [f](const In& v) { return f(v[0], {1}); }},
        {"dim 1 of [7,5000]", {r({7, 5000})}, [f](const In& v) { return f(v[0], {1}); }},
        {"dim 1 of [2,300000] (split rows)", {r({2, 300000})}, [f](const In& v) { return f(v[0], {1}); }},
        {"dim 0 of [20000,24] (split outer)", {r({20000, 24})}, [f](const In& v) { return f(v[0], {0}); }},
        {"dims {0,2} of [6,5,7]",
         {r({6, 5, 7})},
         [f](const In& v) {
           return f(v[0], {0, 2});
         }},
    };
  };
  t["sum"] = [=] {
    return std::vector<ParityCase>(
        reduce_cases([](const Tensor& x, const std::vector<int64_t>& d) { return sum(x, d); }));
  };
  t["mean"] = [=] {
    return std::vector<ParityCase>(
        reduce_cases([](const Tensor& x, const std::vector<int64_t>& d) { return mean(x, d); }));
  };
  t["max"] = [=] {
    return std::vector<ParityCase>(
        reduce_cases([](const Tensor& x, const std::vector<int64_t>& d) { return max(x, d); }));
  };
  t["min"] = [=] {
    return std::vector<ParityCase>(
        reduce_cases([](const Tensor& x, const std::vector<int64_t>& d) { return min(x, d); }));
  };
  t["var"] = [=] {
    return std::vector<ParityCase>(
        reduce_cases([](const Tensor& x, const std::vector<int64_t>& d) { return var(x, d); }));
  };
  t["norm"] = [=] {
    return std::vector<ParityCase>(
        reduce_cases([](const Tensor& x, const std::vector<int64_t>& d) { return norm(x, d); }));
  };
  auto row_cases = [](std::function<Tensor(const Tensor&, int64_t)> f) {
    return std::vector<ParityCase>{
        {"dim 1 of [300,10]", {r({300, 10}, -3, 3)}, [f](const In& v) { return f(v[0], 1); }},
        {"dim 1 of [5,3000]", {r({5, 3000}, -3, 3)}, [f](const In& v) { return f(v[0], 1); }},
        {"dim 0 of [40,6]", {r({40, 6}, -3, 3)}, [f](const In& v) { return f(v[0], 0); }},
    };
  };
  t["softmax"] = [=] {
    return std::vector<ParityCase>(row_cases([](const Tensor& x, int64_t d) { return softmax(x, d); }));
  };
  t["log_softmax"] = [=] {
    return std::vector<ParityCase>(row_cases([](const Tensor& x, int64_t d) { return log_softmax(x, d); }));
  };
  t["logsumexp"] = [=] {
    return std::vector<ParityCase>(row_cases([](const Tensor& x, int64_t d) { return logsumexp(x, d); }));
  };
  t["argmax"] = [=] {
    return std::vector<ParityCase>({
        {"dim 1 of [300,10]", {r({300, 10})}, [](const In& v) { return argmax(v[0], 1).to(v[0].dtype()); }, false},
        {"dim 0 of [3000,5]", {r({3000, 5})}, [](const In& v) { return argmax(v[0], 0).to(v[0].dtype()); }, false},
    });
  };

  // views and copies
  t["view"] = [=] {
    return std::vector<ParityCase>({{"[3,4] -> [4,3]", {r({3, 4})}, [](const In& v) {
                                       return v[0].contiguous().view({4, 3});
                                     }}});
  };
  t["reshape"] = [=] {
    return std::vector<ParityCase>({{"[3,4] -> [2,6]", {r({3, 4})}, [](const In& v) { return v[0].reshape({2, 6}); }}});
  };
  t["slice"] = [=] {
    return std::vector<ParityCase>(
        {{"dim 1 step 2", {r({5, 9})}, [](const In& v) { return mul(v[0].slice(1, 1, 8, 2), 2.0); }}});
  };
  t["narrow"] = [=] {
    return std::vector<ParityCase>(
        {{"dim 0", {r({5, 9})}, [](const In& v) { return mul(v[0].narrow(0, 1, 3), 2.0); }}});
  };
  t["transpose"] = [=] {
    return std::vector<ParityCase>(
        {{"[3,4,5] 0<->2", {r({3, 4, 5})}, [](const In& v) { return v[0].transpose(0, 2).contiguous(); }}});
  };
  t["permute"] = [=] {
    return std::vector<ParityCase>({{"[3,4,5] (1,2,0)", {r({3, 4, 5})}, [](const In& v) {
                                       return v[0].permute({1, 2, 0}).contiguous();
                                     }}});
  };
  t["expand"] = [=] {
    return std::vector<ParityCase>({{"[3,1] -> [3,5]", {r({3, 1})}, [](const In& v) {
                                       return mul(v[0].expand({3, 5}), 1.5);
                                     }}});
  };
  t["squeeze"] = [=] {
    return std::vector<ParityCase>(
        {{"[3,1,4]", {r({3, 1, 4})}, [](const In& v) { return mul(v[0].squeeze(1), 1.5); }}});
  };
  t["unsqueeze"] = [=] {
    return std::vector<ParityCase>(
        {{"[3,4] at 1", {r({3, 4})}, [](const In& v) { return mul(v[0].unsqueeze(1), 1.5); }}});
  };
  t["contiguous"] = [=] {
    return std::vector<ParityCase>(
        {{"transposed [6,7]", {r({6, 7})}, [](const In& v) { return v[0].t().contiguous(); }}});
  };
  t["cat"] = [=] {
    return std::vector<ParityCase>({{"dim 1", {r({3, 2}), r({3, 5})}, [](const In& v) {
                                       return cat({v[0], v[1]}, 1);
                                     }}});
  };
  t["stack"] = [=] {
    return std::vector<ParityCase>({{"dim 0", {r({3, 2}), r({3, 2})}, [](const In& v) {
                                       return stack({v[0], v[1]}, 0);
                                     }}});
  };
  t["split"] = [=] {
    return std::vector<ParityCase>(
        {{"dim 1 by 2", {r({3, 5})}, [](const In& v) { return mul(split(v[0], 2, 1)[2], 3.0); }}});
  };
  t["chunk"] = [=] {
    return std::vector<ParityCase>(
        {{"dim 0 in 2", {r({5, 3})}, [](const In& v) { return mul(chunk(v[0], 2, 0)[1], 3.0); }}});
  };

  // indexing (indices built on the CPU; the case moves them with the inputs)
  t["index_select"] = [=] {
    return std::vector<ParityCase>({
        {"dim 0 with repeats",
         {r({6, 5}), idx({4, 0, 4, 2}, {4})},
         [](const In& v) { return index_select(v[0], 0, v[1]); }},
        {"dim 1", {r({3, 6, 4}), idx({5, 1}, {2})}, [](const In& v) { return index_select(v[0], 1, v[1]); }},
    });
  };
  t["gather"] = [=] {
    return std::vector<ParityCase>({
        {"dim 1",
         {r({4, 5}), idx({0, 4, 4, 1, 2, 2, 3, 0}, {4, 2})},
         [](const In& v) { return gather(v[0], 1, v[1]); }},
        {"dim 0", {r({4, 5}), idx({3, 0, 1, 1, 2}, {1, 5})}, [](const In& v) { return gather(v[0], 0, v[1]); }},
    });
  };
  t["scatter_add"] = [=] {
    return std::vector<ParityCase>({
        {"dim 1 with repeats",
         {r({3, 5}), idx({0, 4, 4, 1, 1, 1}, {3, 2}), r({3, 2})},
         [](const In& v) { return scatter_add(v[0], 1, v[1], v[2]); }},
    });
  };

  // losses (compositions of the primitives above)
  t["cross_entropy"] = [=] {
    return std::vector<ParityCase>({
        {"class indices [64,10]",
         {r({64, 10}, -3, 3), idx(std::vector<int64_t>(64, 3), {64})},
         [](const In& v) { return cross_entropy(v[0], v[1]); }},
        {"label smoothing, sum",
         {r({16, 7}, -3, 3), idx({0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1}, {16})},
         [](const In& v) { return cross_entropy(v[0], v[1], 0.1, Reduction::sum); }},
        {"soft targets", {r({8, 5}, -3, 3), r({8, 5}, 0, 1)}, [](const In& v) { return cross_entropy(v[0], v[1]); }},
        // rows longer than kWarpRowMax = 1024 (kernels/cuda/rowwise.cuh): the fused kernel's block per row
        {"block per row [8,5000], targets at both ends and the warp limit",
         {r({8, 5000}, -3, 3), idx({0, 4999, 1023, 1024, 2500, 17, 4000, 3}, {8})},
         [](const In& v) { return cross_entropy(v[0], v[1], 0.0, Reduction::none); }},
        {"block per row [3,1025], label smoothing, sum",
         {r({3, 1025}, -3, 3), idx({1024, 0, 512}, {3})},
         [](const In& v) { return cross_entropy(v[0], v[1], 0.2, Reduction::sum); }},
    });
  };
  t["mse_loss"] = [=] {
    return std::vector<ParityCase>(
        {{"[16,9]", {r({16, 9}), r({16, 9})}, [](const In& v) { return mse_loss(v[0], v[1]); }}});
  };
  t["cosine_similarity"] = [=] {
    return std::vector<ParityCase>({{"dim 1 of [32,17]", {r({32, 17}), r({32, 17})}, [](const In& v) {
                                       return cosine_similarity(v[0], v[1], 1);
                                     }}});
  };
  t["normalize"] = [=] {
    return std::vector<ParityCase>({
        {"dim 1 of [64,128]", {r({64, 128})}, [](const In& v) { return normalize(v[0], 1); }},
        {"dim 0 of [9,5]", {r({9, 5})}, [](const In& v) { return normalize(v[0], 0); }},
        // rows longer than kWarpRowMax = 1024: the block per row, forward and backward
        {"block per row: dim 1 of [4,3000]", {r({4, 3000})}, [](const In& v) { return normalize(v[0], 1); }},
        {"block per row: dim 0 of [1025,3]", {r({1025, 3})}, [](const In& v) { return normalize(v[0], 0); }},
    });
  };
  // dropout: the same Philox stream on both devices (the case reseeds before each run)
  t["dropout"] = [=] {
    return std::vector<ParityCase>({
        {"p=0.3 [257,33]",
         {r({257, 33})},
         [](const In& v) {
           manual_seed(77);
           return dropout(v[0], 0.3);
         }},
    });
  };
  // factories: through the fill kernel
  auto fill_case = [](std::function<Tensor(TensorOptions)> f) {
    return std::vector<ParityCase>{{"[37,5]", {r({37, 5})}, [f](const In& v) { return mul(v[0], f(v[0].options())); }}};
  };
  t["zeros"] = [=] {
    return std::vector<ParityCase>(fill_case([](TensorOptions o) { return add(zeros({37, 5}, o), 0.25); }));
  };
  t["ones"] = [=] { return std::vector<ParityCase>(fill_case([](TensorOptions o) { return ones({37, 5}, o); })); };
  t["full"] = [=] {
    return std::vector<ParityCase>(fill_case([](TensorOptions o) { return full({37, 5}, -2.5, o); }));
  };
  return t;
}

}  // namespace

const std::map<std::string, ParityCases>& parity_table() {
  static const auto table = make_table();
  return table;
}

namespace {

class CudaOpParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaOpParity, MatchesCpu) {
  SIAM_REQUIRE_CUDA();
  const std::string& name = GetParam();
  auto it = parity_table().find(name);
  ASSERT_TRUE(it != parity_table().end()) << "op '" << name << "' has a CUDA kernel but no parity cases";
  manual_seed(4321);
  for (const auto& c : it->second())
    for (DType dt : {DType::f32, DType::f64})
      for (Layout layout : {Layout::contiguous, Layout::transposed, Layout::strided}) {
        if (layout == Layout::transposed && !transposes_an_input(c)) continue;  // the contiguous run again
        if (layout == Layout::strided && dt != DType::f32) continue;  // the layout's reads checked once, in f32
        std::string msg = run_parity_case(c, dt, layout, Device("cuda:0"));
        EXPECT_TRUE(msg.empty()) << name << " [" << c.label << "] " << dtype_name(dt) << " " << layout_name(layout)
                                 << ": " << msg;
      }
}

std::vector<std::string> cuda_ops() {
  std::vector<std::string> v;
  for (const auto& [name, cases] : parity_table()) v.push_back(name);
  return v;
}

// A table entry must name a registry op that has a CUDA kernel (else it tests nothing the registry knows).
TEST(CudaParity, TableNamesRegistryCudaOps) {
  for (const auto& [name, cases] : parity_table()) {
    const OpInfo* op = find_op(name);
    ASSERT_NE(op, nullptr) << "parity cases for '" << name << "', which is not in the op registry";
    EXPECT_TRUE(op->cuda) << "parity cases for '" << name << "', which the registry marks cuda = false";
    EXPECT_TRUE(static_cast<bool>(cases)) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Registry, CudaOpParity, ::testing::ValuesIn(cuda_ops()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CudaOpParity);

}  // namespace
}  // namespace siam::test

// Walks the op registry: every differentiable op must have samples, and every sample must pass the
// finite-difference gradient check in f64. Ops with CUDA kernels must have a parity test (tests/cuda).
#include <gtest/gtest.h>

#include <set>

#include "engine/core/random.h"
#include "engine/ops/registry.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/op_samples.h"

namespace siam::test {
namespace {

class OpGradcheck : public ::testing::TestWithParam<std::string> {};

TEST_P(OpGradcheck, FiniteDifferences) {
  const std::string& name = GetParam();
  auto it = sample_registry().find(name);
  ASSERT_TRUE(it != sample_registry().end() && !it->second.empty())
      << "op '" << name << "' is differentiable but has no gradient-check samples (add SIAM_OP_SAMPLES(\"" << name
      << "\") in tests/unit)";
  manual_seed(1234);
  int checked = 0;
  for (const auto& make : it->second) {
    for (const auto& s : make()) {
      auto r = gradcheck(s.fn, s.inputs, s.atol, s.rtol, s.skip_grad);
      EXPECT_TRUE(r.ok) << name << " [" << s.label << "]: " << r.message;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

std::vector<std::string> differentiable_ops() {
  std::vector<std::string> v;
  for (const auto& op : op_registry())
    if (op.differentiable) v.emplace_back(op.name);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Registry, OpGradcheck, ::testing::ValuesIn(differentiable_ops()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(OpRegistry, SamplesNameRegisteredOps) {
  for (const auto& [name, fns] : sample_registry())
    EXPECT_NE(find_op(name), nullptr) << "samples registered for '" << name << "', which is not in the op registry";
}

TEST(OpRegistry, NamesAreUnique) {
  std::set<std::string_view> seen;
  for (const auto& op : op_registry()) EXPECT_TRUE(seen.insert(op.name).second) << op.name;
}

}  // namespace
}  // namespace siam::test

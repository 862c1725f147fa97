// Sample inputs for the ops of the registry (engine/ops/registry.h), registered from the test files with
// SIAM_OP_SAMPLES(op_name) { return {...}; }. The gradient-check test walks the registry and runs a
// finite-difference check in f64 on every sample of every differentiable op; an op without samples fails.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace siam::test {

struct OpSample {
  std::string label;                                        // e.g. "broadcast [3,1] x [4]"
  std::vector<Tensor> inputs;                               // f64; floating ones are differentiated
  std::function<Tensor(const std::vector<Tensor>&)> fn;     // the op under test applied to inputs
  double atol = 1e-6, rtol = 1e-5;                          // gradient comparison tolerances
  std::vector<bool> skip_grad = {};                         // per input: true = do not differentiate
};
using SampleFn = std::function<std::vector<OpSample>()>;

std::map<std::string, std::vector<SampleFn>>& sample_registry();

struct SampleRegistrar {
  SampleRegistrar(const char* op, SampleFn fn) { sample_registry()[op].push_back(std::move(fn)); }
};

// Random f64 tensor in [lo, hi) (deterministic per call site through the default generator).
Tensor rnd(const Shape& shape, double lo = -1.0, double hi = 1.0);
// Non-contiguous f64 tensor with the given logical shape (a transposed view of a random tensor).
Tensor rnd_noncontig(const Shape& shape, double lo = -1.0, double hi = 1.0);

}  // namespace siam::test

#define SIAM_SAMPLES_CAT2(a, b) a##b
#define SIAM_SAMPLES_CAT(a, b) SIAM_SAMPLES_CAT2(a, b)
#define SIAM_OP_SAMPLES(opname)                                                                       \
  static std::vector<::siam::test::OpSample> SIAM_SAMPLES_CAT(siam_samples_, __LINE__)();            \
  static ::siam::test::SampleRegistrar SIAM_SAMPLES_CAT(siam_samples_reg_, __LINE__)(                \
      opname, &SIAM_SAMPLES_CAT(siam_samples_, __LINE__));                                            \
  static std::vector<::siam::test::OpSample> SIAM_SAMPLES_CAT(siam_samples_, __LINE__)()

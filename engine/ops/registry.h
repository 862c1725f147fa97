// The one op table. Every op front-end of engine/ is listed here with whether it has a backward and a
// CUDA kernel. The test suite iterates this table: a differentiable op without a gradient check, or a
// CUDA kernel without a parity test, fails the suite (tests/unit/op_registry_test.cpp).
#pragma once
#include <string_view>
#include <vector>

namespace siam {

struct OpInfo {
  std::string_view name;   // matches the front-end function (and the sample registry in tests)
  std::string_view group;  // elementwise, reduce, linalg, conv, norm, pool, loss, siamese, index, shape, random, factory
  bool differentiable;     // has a backward; needs a finite-difference gradient check
  bool cuda;               // has a CUDA kernel; needs a CUDA-vs-CPU parity test
};

const std::vector<OpInfo>& op_registry();
const OpInfo* find_op(std::string_view name);

}  // namespace siam

// Central-difference gradient check in f64: compares backward() of sum(w * f(x)) for a random weight w
// with (L(x + h e_i) - L(x - h e_i)) / 2h for every element of every differentiable input.
#pragma once
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace siam::test {

struct GradcheckResult {
  bool ok = true;
  std::string message;  // first mismatch: input, element, analytic vs numeric
};

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn, std::vector<Tensor> inputs,
                          double atol = 1e-6, double rtol = 1e-5, const std::vector<bool>& skip = {},
                          double h = 1e-6);

}  // namespace siam::test

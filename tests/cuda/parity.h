// The CUDA-vs-CPU parity harness of tests/cuda: a case is an op applied to CPU inputs; run_parity_case runs it
// on the CPU and on a CUDA device and compares outputs and input gradients with dtype-aware tolerances.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace siam::test {

struct ParityCase {
  std::string label;
  std::vector<Tensor> inputs;  // on the CPU; floating ones (f64 here) are converted to the dtype under test
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  bool grad = true;  // compare the gradients of the floating inputs too
};

// Builds an op's cases (inputs are made only when the test runs).
using ParityCases = std::function<std::vector<ParityCase>()>;
// op name -> cases (tests/cuda/cuda_parity_test.cpp). Every registry op with cuda = true needs an entry here
// or in the explicit list of CudaParity.EveryCudaKernelHasAParityTest.
const std::map<std::string, ParityCases>& parity_table();

// How the inputs are laid out on the device (the CPU side always gets contiguous ones):
//   contiguous  as they are
//   transposed  each input of rank >= 2 materialized transposed and viewed back (rank 0 and 1 stay contiguous)
//   strided     each input of rank >= 1 a step-2 slice of the last dim of a larger tensor, at storage offset 1;
//               a rank-0 input a one-element narrow at offset 1
enum class Layout { contiguous, transposed, strided };
const char* layout_name(Layout l);
// True when `transposed` changes some input of c (one has rank >= 2); otherwise it repeats `contiguous`.
bool transposes_an_input(const ParityCase& c);

// Runs c in dtype dt on the CPU and on `device` with its inputs laid out as `layout` there; returns "" when
// outputs and gradients agree, else a description of the first mismatch.
// Tolerance |cuda - cpu| <= atol + rtol |cpu|: f32 atol 1e-5, rtol 1e-4; f64 atol 1e-10, rtol 1e-9.
std::string run_parity_case(const ParityCase& c, DType dt, Layout layout, Device device);

}  // namespace siam::test

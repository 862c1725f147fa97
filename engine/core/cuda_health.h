// Whether this process's CUDA context works: poisoned by a kernel fault, or never there. Apart from device.h so that
// the header most files include stays as it is; defined in kernels/cuda/runtime.cu, or as "healthy" in a build without
// CUDA.
#pragma once
#include <string>

namespace siam {

// The error that has poisoned this process's CUDA context, when one has (an illegal address or a trap in a
// kernel: every later CUDA call fails with it), as "cuda:0: cudaErrorIllegalAddress (an illegal memory access
// ...)"; empty while every device is healthy, and always in a build without CUDA or without a device. It waits
// for the work of every device and clears an error that is not sticky. Never throws. The test and benchmark
// drivers (tests/cuda/main.cpp, bench/main.cpp) call it after each test, to stop a run that could only fail
// from there on.
std::string cuda_sticky_error();

// Why cuda_available() is false ("built without CUDA", or the runtime's error, e.g. "cudaGetDeviceCount:
// cudaErrorInsufficientDriver (...)": a driver older than the toolkit); empty when a device is present.
std::string cuda_unavailable_reason();

}  // namespace siam

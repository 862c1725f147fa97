// What the cuDNN kernel files share (internal to kernels/cuda, CUDA and cuDNN headers): the per-thread,
// per-device cuDNN handle bound to dense_stream(device), RAII descriptors, type mappings.
#pragma once
#include <cudnn.h>

#include <climits>
#include <map>

#include "kernels/cuda/gemm_context.h"

namespace siam::kernels::cuda {

// cuDNN handles are not safe for concurrent use, so one per (thread, device); created on first use and kept
// for the thread's life (no destruction at exit, after the CUDA runtime may be gone). Each call rebinds the
// handle to the device's dense stream and makes the device current.
inline cudnnHandle_t cudnn_handle(int device) {
  thread_local std::map<int, cudnnHandle_t> handles;
  use_device(device);
  auto it = handles.find(device);
  cudnnHandle_t h = nullptr;
  if (it == handles.end()) {
    SIAM_CUDNN_CHECK(cudnnCreate(&h));
    handles[device] = h;
  } else {
    h = it->second;
  }
  SIAM_CUDNN_CHECK(cudnnSetStream(h, dense_stream(device)));
  return h;
}

inline cudnnDataType_t cudnn_data_type(DenseType t) {
  switch (t) {
    case DenseType::f32: return CUDNN_DATA_FLOAT;
    case DenseType::f64: return CUDNN_DATA_DOUBLE;
    case DenseType::bf16: return CUDNN_DATA_BFLOAT16;
  }
  return CUDNN_DATA_FLOAT;
}
// Accumulation type of a convolution on t.
inline cudnnDataType_t cudnn_compute_type(DenseType t) {
  return t == DenseType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
}

inline int checked_int(int64_t v, const char* what) {
  SIAM_CHECK(v >= 0 && v <= INT_MAX, "cuDNN: ", what, " ", v, " does not fit cuDNN's int");
  return static_cast<int>(v);
}

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() { SIAM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  // Packed NCHW.
  void set_nchw(cudnnDataType_t t, int64_t n, int64_t c, int64_t h, int64_t w, const char* what) {
    SIAM_CHECK(n * c * h * w <= INT_MAX, "cuDNN: ", what, " (", n, ", ", c, ", ", h, ", ", w,
               ") has more elements than cuDNN's int can count");
    SIAM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, t, checked_int(n, what), checked_int(c, what),
                                                checked_int(h, what), checked_int(w, what)));
  }
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc() { SIAM_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d)); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  void set(cudnnDataType_t t, int64_t k, int64_t c, int64_t r, int64_t s) {
    SIAM_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d, t, CUDNN_TENSOR_NCHW, checked_int(k, "filter"),
                                                checked_int(c, "filter"), checked_int(r, "filter"),
                                                checked_int(s, "filter")));
  }
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc() { SIAM_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d)); }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

}  // namespace siam::kernels::cuda

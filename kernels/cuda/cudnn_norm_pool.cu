// Batch norm through cuDNN (contract in kernels/cuda/cudnn_norm_pool.h; the eval-mode backward and the pooling
// kernels are hand-written, in kernels/cuda/norm_pool_kernels.cu).
#include <vector>

#include "kernels/cuda/cudnn_common.h"
#include "kernels/cuda/cudnn_norm_pool.h"

namespace siam::kernels::cuda {

namespace {

// ---------------------------------------------------------------------------------------------- batch norm

// x as (N, C, L, 1) and the derived per-channel descriptor.
struct BnDescs {
  TensorDesc x, p;
  BnDescs(int64_t N, int64_t C, int64_t L, DenseType t) {
    x.set_nchw(cudnn_data_type(t), N, C, L, 1, "batch_norm input");
    SIAM_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(p.d, x.d, CUDNN_BATCHNORM_SPATIAL));
  }
};

struct Scale {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  const void* one(DenseType t) const { return t == DenseType::f64 ? static_cast<const void*>(&d1) : &f1; }
  const void* zero(DenseType t) const { return t == DenseType::f64 ? static_cast<const void*>(&d0) : &f0; }
};

// A (C) buffer of `value` in the param type (no affine: cuDNN always wants scale and bias).
void* constant_param(int64_t C, DenseType t, double value, int device, const ScratchFn& scratch) {
  const size_t es = t == DenseType::f64 ? 8 : 4;
  void* p = scratch(static_cast<size_t>(C) * es);
  std::vector<char> host(static_cast<size_t>(C) * es);
  for (int64_t c = 0; c < C; ++c) {
    if (t == DenseType::f64)
      reinterpret_cast<double*>(host.data())[c] = value;
    else
      reinterpret_cast<float*>(host.data())[c] = static_cast<float>(value);
  }
  // a synchronous copy from pageable memory: the buffer is ready before the call that reads it
  SIAM_CUDA_CHECK(cudaMemcpyAsync(p, host.data(), host.size(), cudaMemcpyHostToDevice, dense_stream(device)));
  SIAM_CUDA_CHECK(cudaStreamSynchronize(dense_stream(device)));
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------------- batch norm

void batch_norm_train_forward(int64_t N, int64_t C, int64_t L, DenseType t, int device, const void* x, const void* w,
                              const void* b, double momentum, double eps, void* running_mean, void* running_var,
                              void* y, void* save_mean, void* save_invstd, const ScratchFn& scratch) {
  check_bn_type(t);
  cudnnHandle_t h = cudnn_handle(device);
  BnDescs d(N, C, L, t);
  if (!w) w = constant_param(C, t, 1.0, device, scratch);
  if (!b) b = constant_param(C, t, 0.0, device, scratch);
  // cuDNN updates both running statistics or neither.
  const size_t pbytes = static_cast<size_t>(C) * (t == DenseType::f64 ? 8 : 4);
  if ((running_mean == nullptr) != (running_var == nullptr)) {
    if (!running_mean) running_mean = scratch(pbytes);
    if (!running_var) running_var = scratch(pbytes);
  }
  Scale s;
  SIAM_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, s.one(t), s.zero(t), d.x.d, x,
                                                          d.x.d, y, d.p.d, w, b, momentum, running_mean, running_var,
                                                          eps, save_mean, save_invstd));
}

void batch_norm_eval_forward(int64_t N, int64_t C, int64_t L, DenseType t, int device, const void* x, const void* w,
                             const void* b, const void* running_mean, const void* running_var, double eps, void* y,
                             const ScratchFn& scratch) {
  check_bn_type(t);
  cudnnHandle_t h = cudnn_handle(device);
  BnDescs d(N, C, L, t);
  if (!w) w = constant_param(C, t, 1.0, device, scratch);
  if (!b) b = constant_param(C, t, 0.0, device, scratch);
  Scale s;
  SIAM_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, s.one(t), s.zero(t), d.x.d, x,
                                                           d.x.d, y, d.p.d, w, b, running_mean, running_var, eps));
}

void batch_norm_train_backward(int64_t N, int64_t C, int64_t L, DenseType t, int device, const void* x,
                               const void* gy, const void* w, const void* save_mean, const void* save_invstd,
                               double eps, void* gx, void* gw, void* gb, const ScratchFn& scratch) {
  check_bn_type(t);
  cudnnHandle_t h = cudnn_handle(device);
  BnDescs d(N, C, L, t);
  if (!w) w = constant_param(C, t, 1.0, device, scratch);
  const size_t pbytes = static_cast<size_t>(C) * (t == DenseType::f64 ? 8 : 4);
  if (!gx) gx = scratch(static_cast<size_t>(N * C * L) * dense_type_size(t));
  if (!gw) gw = scratch(pbytes);
  if (!gb) gb = scratch(pbytes);
  Scale s;
  SIAM_CUDNN_CHECK(cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, s.one(t), s.zero(t), s.one(t), s.zero(t),
                                                   d.x.d, x, d.x.d, gy, d.x.d, gx, d.p.d, w, gw, gb, eps, save_mean,
                                                   save_invstd));
}

}  // namespace siam::kernels::cuda

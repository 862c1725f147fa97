#include "engine/core/random.h"

#include "engine/ops/dispatch.h"
#include "kernels/cpu/random.h"
#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/random.h"
#include "kernels/cuda/stream.h"
#endif

namespace siam {

Generator& default_generator() {
  static Generator g;
  return g;
}
void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

Tensor uniform(const Shape& shape, double lo, double hi, TensorOptions opts, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
#if defined(SIAM_WITH_CUDA)
  if (opts.device.is_cuda() && opts.dtype == DType::f32) {
    Tensor t = empty(shape, TensorOptions(opts.dtype, opts.device));
    uint64_t off = g.advance(static_cast<uint64_t>(t.numel()));
    cuda::DeviceGuard dg(opts.device.index);  // the kernel runs on the current device's stream
    kernels::cuda::fill_uniform_f32(t.data<float>(), t.numel(), g.seed(), kStreamTensor, off, lo, hi);
    if (opts.requires_grad) t.set_requires_grad(true);
    return t;
  }
#endif
  Tensor t = empty(shape, TensorOptions(opts.dtype, kCPU));
  uint64_t off = g.advance(static_cast<uint64_t>(t.numel()));
  SIAM_DISPATCH_FLOAT(opts.dtype, "uniform",
                      kernels::cpu::fill_uniform<scalar_t>(t.numel(), g.seed(), kStreamTensor, off,
                                                           t.data<scalar_t>(), lo, hi));
  t = t.to(opts.device);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor normal(const Shape& shape, double mean, double std, TensorOptions opts, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
#if defined(SIAM_WITH_CUDA)
  if (opts.device.is_cuda() && opts.dtype == DType::f32) {
    Tensor t = empty(shape, TensorOptions(opts.dtype, opts.device));
    uint64_t off = g.advance(static_cast<uint64_t>(t.numel()));
    cuda::DeviceGuard dg(opts.device.index);
    kernels::cuda::fill_normal_f32(t.data<float>(), t.numel(), g.seed(), kStreamTensor, off, mean, std);
    if (opts.requires_grad) t.set_requires_grad(true);
    return t;
  }
#endif
  Tensor t = empty(shape, TensorOptions(opts.dtype, kCPU));
  uint64_t off = g.advance(static_cast<uint64_t>(t.numel()));
  SIAM_DISPATCH_FLOAT(opts.dtype, "normal",
                      kernels::cpu::fill_normal<scalar_t>(t.numel(), g.seed(), kStreamTensor, off,
                                                          t.data<scalar_t>(), mean, std));
  t = t.to(opts.device);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor rand(const Shape& shape, TensorOptions opts) { return uniform(shape, 0.0, 1.0, opts); }
Tensor randn(const Shape& shape, TensorOptions opts) { return normal(shape, 0.0, 1.0, opts); }
Tensor rand(const Shape& shape, Generator& gen, TensorOptions opts) { return uniform(shape, 0.0, 1.0, opts, &gen); }
Tensor randn(const Shape& shape, Generator& gen, TensorOptions opts) { return normal(shape, 0.0, 1.0, opts, &gen); }

}  // namespace siam

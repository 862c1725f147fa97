// siam::Tensor: a handle to a strided view of reference-counted storage, with autograd metadata.
// Copying a Tensor copies the handle (both name the same tensor), as in PyTorch.
//
// Views (view, reshape of a contiguous tensor, narrow, slice, transpose, permute, expand, squeeze,
// unsqueeze, detach) share storage; contiguous() and clone() copy. Autograd: a tensor that requires a
// gradient records the ops applied to it; backward() walks that tape. detach() is the stopgrad primitive:
// zero-copy (same storage) and cut from the graph.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/storage.h"

namespace siam {

using Shape = std::vector<int64_t>;
constexpr int kMaxDims = 8;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

namespace autograd {
class Node;
class AccumulateGrad;
}  // namespace autograd

class Tensor;
// A gradient hook sees the gradient flowing into a tensor; it may return a replacement.
using GradHook = std::function<std::optional<Tensor>(const Tensor& grad)>;
// A post-accumulate hook runs on a leaf after its .grad has been updated (what DDP buckets listen to).
using PostAccumulateHook = std::function<void(const Tensor& leaf)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;

  // autograd
  bool requires_grad = false;  // meaningful for leaves; non-leaves require grad iff grad_fn is set
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;
  std::weak_ptr<autograd::AccumulateGrad> grad_accumulator;
  std::vector<GradHook> leaf_hooks;
  std::vector<PostAccumulateHook> post_accumulate_hooks;
};

// pinned (CPU tensors only): the storage is page-locked host memory from the CUDA backend's pinned cache,
// so that to(cuda, non_blocking = true) from it is a truly asynchronous copy. The data loader allocates its
// batches with empty(shape, opts.with_pinned(true)) (or calls pin_memory() on a finished batch). Asking for
// pinned memory without a CUDA device throws siam::Error.
struct TensorOptions {
  DType dtype = DType::f32;
  Device device = kCPU;
  bool requires_grad = false;
  bool pinned = false;

  TensorOptions() = default;
  TensorOptions(DType d) : dtype(d) {}
  TensorOptions(Device dev) : device(dev) {}
  TensorOptions(DType d, Device dev, bool rg = false) : dtype(d), device(dev), requires_grad(rg) {}
  TensorOptions with_dtype(DType d) const { auto o = *this; o.dtype = d; return o; }
  TensorOptions with_device(Device d) const { auto o = *this; o.device = d; return o; }
  TensorOptions with_requires_grad(bool r) const { auto o = *this; o.requires_grad = r; return o; }
  TensorOptions with_pinned(bool p) const { auto o = *this; o.pinned = p; return o; }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t numel() const { return shape_numel(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t element_size() const { return dtype_size(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  bool is_contiguous() const;
  bool is_cpu() const { return device().is_cpu(); }
  bool is_cuda() const { return device().is_cuda(); }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  // Normalizes a possibly negative dim for this tensor's rank; throws naming `op` when out of range.
  int64_t wrap_dim(int64_t dim, const char* op) const;

  // Pointer to the first element (storage + offset). T must match dtype().
  template <class T> T* data() const {
    SIAM_CHECK(dtype_of<T>::value == dtype(), "data<", dtype_name(dtype_of<T>::value), ">() called on a ",
               dtype_name(dtype()), " tensor");
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const {
    return static_cast<char*>(impl().storage->data()) + impl().offset * static_cast<int64_t>(element_size());
  }
  // The single value of a one-element tensor, converted to double.
  double item() const;
  // Copy of all elements (row-major) converted to T; works for any dtype and layout on the CPU.
  template <class T> std::vector<T> to_vector() const;

  // ---- views (share storage) ----
  Tensor view(const Shape& shape) const;      // needs compatible strides; -1 infers one dim
  Tensor reshape(const Shape& shape) const;   // view when possible, else a contiguous copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow + squeeze
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // 2-D transpose
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor expand(const Shape& shape) const;  // -1 keeps a dim
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;

  // ---- copies ----
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a new contiguous tensor (differentiable)
  Tensor to(DType dtype) const;
  // Copy to another device (itself when already there), made contiguous. Copies run on the current stream of
  // the CUDA device involved (kernels/cuda/stream.h). non_blocking = false returns once the data is usable
  // from the host's point of view; true returns at once where the copy can stay in flight: host to device
  // always (pageable sources are staged by the driver before the call returns; pinned ones are read
  // asynchronously, and the pinned block is not reused before the copy ends), device to host only into a
  // pinned result (the caller synchronizes the stream before reading it). Differentiable.
  Tensor to(Device device, bool non_blocking = false) const;
  // A CPU copy in pinned (page-locked) host memory; itself when already pinned. Throws siam::Error for a
  // tensor that is not on the CPU or when no CUDA device is present.
  Tensor pin_memory() const;
  bool is_pinned() const { return impl().storage->pinned(); }

  // ---- in-place (only where no gradient is being recorded for this tensor) ----
  Tensor& zero_();
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);  // broadcasts src; converts dtype
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double s);

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  // Backpropagates from this tensor. Without `grad` the tensor must hold one element (gradient 1).
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // zero-copy stopgrad: same storage, no history
  void register_hook(GradHook hook) const;
  void register_post_accumulate_hook(PostAccumulateHook hook) const;  // leaves only

  // ---- misc ----
  std::string str() const;  // small tensors in full, large ones summarized
  bool same(const Tensor& o) const { return impl_ == o.impl_; }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  TensorImpl& impl() const {
    SIAM_CHECK(impl_ != nullptr, "operation on an undefined tensor");
    return *impl_;
  }
  TensorOptions options() const { return TensorOptions(dtype(), device()); }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// A tensor that aliases `base`'s storage with the given geometry (no autograd history).
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);
// A new uninitialized tensor.
Tensor empty(const Shape& shape, TensorOptions opts = {});

// ---- factories ----
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor eye(int64_t n, TensorOptions opts = {});
Tensor eye(int64_t n, int64_t m, TensorOptions opts = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions opts = {});
Tensor arange(int64_t end, TensorOptions opts = {DType::i64});
// Uniform [0, 1) and standard normal from the global Philox generator (see engine/core/random.h).
Tensor rand(const Shape& shape, TensorOptions opts = {});
Tensor randn(const Shape& shape, TensorOptions opts = {});
// Tensor from host values (row-major), converted to opts.dtype.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions opts = {});
Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape);
Tensor scalar_tensor(double v, TensorOptions opts = {});

// ---- autograd mode ----
bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace siam

#include "engine/tensor.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "engine/autograd/node.h"
#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "kernels/cpu/copy.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/stream.h"

namespace siam {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

// ---------------------------------------------------------------------------------------------------------
// construction

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

Tensor empty(const Shape& shape, TensorOptions opts) {
  SIAM_CHECK(static_cast<int>(shape.size()) <= kMaxDims, "tensors have at most ", kMaxDims, " dims, got shape ",
             shape_str(shape));
  for (auto d : shape) SIAM_CHECK(d >= 0, "negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(opts.dtype);
  if (opts.pinned) {
    SIAM_CHECK(opts.device.is_cpu(), "empty: pinned memory is host memory, but device ", opts.device.str(),
               " was requested for shape ", shape_str(shape));
    impl->storage = Storage::make_pinned(nbytes);
  } else {
    impl->storage = Storage::make(nbytes, opts.device);
  }
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = opts.dtype;
  Tensor t(impl);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

namespace {
#if defined(SIAM_WITH_CUDA)
constexpr bool kCudaBuild = true;
#else
constexpr bool kCudaBuild = false;
#endif
void check_no_grad_inplace(const Tensor& t, const char* op) {
  SIAM_CHECK(!(grad_mode_enabled() && t.requires_grad()), op,
             ": in-place update of a tensor that requires a gradient while gradients are recorded; "
             "wrap it in a NoGradGuard (as optimizers do) or work on a detach()ed copy");
}
}  // namespace

Tensor zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }
Tensor ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }
Tensor full(const Shape& shape, double value, TensorOptions opts) {
  bool rg = opts.requires_grad;
  Tensor t = empty(shape, opts.with_requires_grad(false));
  t.fill_(value);
  if (rg) t.set_requires_grad(true);
  return t;
}
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.options()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.options()); }
Tensor eye(int64_t n, TensorOptions opts) { return eye(n, n, opts); }
Tensor eye(int64_t n, int64_t m, TensorOptions opts) {
  SIAM_CHECK(n >= 0 && m >= 0, "eye: negative size ", n, " x ", m);
  // On the tensor's own device: the diagonal is a strided view (a CUDA eye of 32768^2 built on the host would
  // move 4 GiB).
  Tensor t = zeros({n, m}, opts.with_requires_grad(false));
  if (n > 0 && m > 0) make_view(t, {std::min(n, m)}, {m + 1}, 0).fill_(1.0);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}
Tensor arange(double start, double end, double step, TensorOptions opts) {
  SIAM_CHECK(step != 0.0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
             "arange: bad range start=", start, " end=", end, " step=", step);
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i) * step;
  return from_vector(v, {n}, opts);
}
Tensor arange(int64_t end, TensorOptions opts) { return arange(0.0, static_cast<double>(end), 1.0, opts); }
Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions opts) {
  SIAM_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
             " values for shape ", shape_str(shape));
  Tensor t = empty(shape, TensorOptions(opts.dtype, kCPU));
  int64_t n = t.numel();
  Shape st{1};
  kernels::cpu::copy_strided(1, &n, values.data(), st.data(), DType::f64, t.raw_data(), st.data(), opts.dtype);
  t = t.to(opts.device);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}
Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape) {
  SIAM_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector_i64: ", values.size(),
             " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::i64);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}
Tensor scalar_tensor(double v, TensorOptions opts) { return from_vector({v}, {}, opts); }

// ---------------------------------------------------------------------------------------------------------
// metadata

int64_t Tensor::wrap_dim(int64_t d, const char* op) const {
  int64_t n = dim();
  int64_t lo = n == 0 ? -1 : -n, hi = n == 0 ? 0 : n - 1;
  SIAM_CHECK(d >= lo && d <= hi, op, ": dim ", d, " out of range for a tensor of shape ", shape_str(shape()));
  return d < 0 ? d + std::max<int64_t>(n, 1) : d;
}
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

double Tensor::item() const {
  SIAM_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()), " has ", numel(), " elements, not 1");
  return to_vector<double>()[0];
}

template <class T> std::vector<T> Tensor::to_vector() const {
  Tensor c = is_cpu() ? *this : to(kCPU);
  std::vector<T> out(static_cast<size_t>(numel()));
  Shape dst_strides = contiguous_strides(c.shape());
  kernels::cpu::copy_strided(static_cast<int>(c.dim()), c.shape().data(), c.raw_data(), c.strides().data(),
                             c.dtype(), out.data(), dst_strides.data(), dtype_of<T>::value);
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

// ---------------------------------------------------------------------------------------------------------
// views

namespace {
Shape infer_shape(const Shape& want, int64_t numel, const char* op, const Shape& from) {
  Shape s = want;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      SIAM_CHECK(infer < 0, op, ": more than one -1 in shape ", shape_str(want));
      infer = static_cast<int64_t>(i);
    } else {
      SIAM_CHECK(s[i] >= 0, op, ": bad size in shape ", shape_str(want));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    SIAM_CHECK(known > 0 && numel % known == 0, op, ": cannot view a tensor of shape ", shape_str(from), " as ",
               shape_str(want));
    s[infer] = numel / known;
  }
  SIAM_CHECK(shape_numel(s) == numel, op, ": shape ", shape_str(want), " does not match the ", numel,
             " elements of a tensor of shape ", shape_str(from));
  return s;
}

// Strides for viewing (shape, strides) as new_shape without a copy, or empty when impossible.
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape) {
  // Walk chunks of old dims that are contiguous with each other and match them to new dims.
  Shape out(new_shape.size());
  if (shape_numel(shape) == 0) return contiguous_strides(new_shape);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) {
    for (; view_d >= 0; --view_d) {
      if (new_shape[view_d] != 1) return std::nullopt;
      out[view_d] = 1;
    }
  }
  return out;
}
}  // namespace

Tensor Tensor::view(const Shape& want) const {
  Shape s = infer_shape(want, numel(), "view", shape());
  auto st = view_strides(shape(), strides(), s);
  SIAM_CHECK(st.has_value(), "view: a tensor of shape ", shape_str(shape()), " with strides ", shape_str(strides()),
             " cannot be viewed as ", shape_str(s), " without a copy; use reshape() or contiguous()");
  Tensor out = make_view(*this, s, *st, offset());
  if (autograd::needs_grad({*this})) {
    Shape in_shape = shape();
    autograd::record("view", out, {*this},
                     [in_shape](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                       return {g.reshape(in_shape)};
                     });
  }
  return out;
}

Tensor Tensor::reshape(const Shape& want) const {
  Shape s = infer_shape(want, numel(), "reshape", shape());
  if (view_strides(shape(), strides(), s)) return view(s);
  return contiguous().view(s);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int64_t a = wrap_dim(start_dim, "flatten"), b = wrap_dim(end_dim, "flatten");
  SIAM_CHECK(a <= b, "flatten: start_dim ", start_dim, " after end_dim ", end_dim);
  Shape s;
  for (int64_t i = 0; i < a; ++i) s.push_back(shape()[i]);
  int64_t m = 1;
  for (int64_t i = a; i <= b; ++i) m *= shape()[i];
  s.push_back(m);
  for (int64_t i = b + 1; i < dim(); ++i) s.push_back(shape()[i]);
  return reshape(s);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, "slice");
  int64_t n = shape()[d];
  SIAM_CHECK(step > 0, "slice: step must be positive, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape(), st = strides();
  s[d] = (end - start + step - 1) / step;
  st[d] *= step;
  Tensor out = make_view(*this, s, st, offset() + start * strides()[d]);
  if (autograd::needs_grad({*this})) {
    Shape in_shape = shape();
    DType dt = dtype();
    Device dev = device();
    autograd::record("slice", out, {*this},
                     [in_shape, dt, dev, d, start, end, step](const Tensor& g,
                                                              const std::vector<bool>&) -> std::vector<Tensor> {
                       Tensor gi = zeros(in_shape, TensorOptions(dt, dev));
                       gi.slice(d, start, end, step).copy_(g);
                       return {gi};
                     });
  }
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  int64_t dd = wrap_dim(d, "narrow");
  SIAM_CHECK(start >= 0 && length >= 0 && start + length <= shape()[dd], "narrow: range [", start, ", ",
             start + length, ") out of bounds for dim ", d, " of size ", shape()[dd], " (shape ",
             shape_str(shape()), ")");
  return slice(dd, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  int64_t dd = wrap_dim(d, "select");
  int64_t n = shape()[dd];
  SIAM_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dim ", d, " of size ", n);
  if (index < 0) index += n;
  return narrow(dd, index, 1).squeeze(dd);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  if (dim() == 0) return *this;
  d0 = wrap_dim(d0, "transpose");
  d1 = wrap_dim(d1, "transpose");
  std::vector<int64_t> p(dim());
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[d0], p[d1]);
  return permute(p);
}

Tensor Tensor::t() const {
  SIAM_CHECK(dim() <= 2, "t(): expects a tensor with at most 2 dims, got shape ", shape_str(shape()));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  SIAM_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: ", dims.size(), " dims given for a tensor of shape ",
             shape_str(shape()));
  Shape s(dim()), st(dim());
  std::vector<int64_t> inv(dim(), -1);
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t d = wrap_dim(dims[i], "permute");
    SIAM_CHECK(inv[d] < 0, "permute: dim ", d, " repeated");
    inv[d] = i;
    s[i] = shape()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, s, st, offset());
  if (autograd::needs_grad({*this})) {
    autograd::record("permute", out, {*this}, [inv](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
      return {g.permute(inv)};
    });
  }
  return out;
}

Tensor Tensor::expand(const Shape& want) const {
  SIAM_CHECK(static_cast<int64_t>(want.size()) >= dim(), "expand: cannot expand shape ", shape_str(shape()), " to ",
             shape_str(want));
  int64_t lead = static_cast<int64_t>(want.size()) - dim();
  Shape s(want.size()), st(want.size());
  for (int64_t i = 0; i < static_cast<int64_t>(want.size()); ++i) {
    int64_t src = i - lead;
    int64_t have = src >= 0 ? shape()[src] : 1;
    int64_t w = want[i] == -1 ? have : want[i];
    SIAM_CHECK(src >= 0 || want[i] != -1, "expand: -1 not allowed for a new leading dim in ", shape_str(want));
    if (src >= 0 && have == w) {
      s[i] = w;
      st[i] = strides()[src];
    } else {
      SIAM_CHECK(have == 1, "expand: cannot expand shape ", shape_str(shape()), " to ", shape_str(want),
                 " (dim ", i, " has size ", have, ", not 1)");
      s[i] = w;
      st[i] = 0;
    }
  }
  Tensor out = make_view(*this, s, st, offset());
  if (autograd::needs_grad({*this})) {
    Shape in_shape = shape();
    autograd::record("expand", out, {*this}, [in_shape](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
      return {sum_to(g, in_shape)};
    });
  }
  return out;
}

Tensor Tensor::squeeze() const {
  Shape s;
  for (auto d : shape())
    if (d != 1) s.push_back(d);
  return s.size() == shape().size() ? *this : reshape(s);
}
Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) return *this;
  d = wrap_dim(d, "squeeze");
  if (shape()[d] != 1) return *this;
  Shape s = shape();
  s.erase(s.begin() + d);
  return reshape(s);
}
Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t n = dim() + 1;
  SIAM_CHECK(d >= -n && d < n, "unsqueeze: dim ", d, " out of range for a tensor of shape ", shape_str(shape()));
  if (d < 0) d += n;
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return reshape(s);
}

Tensor Tensor::detach() const {
  // Zero-copy: a new handle onto the same storage and geometry, with no history and no grad.
  return make_view(*this, shape(), strides(), offset());
}

// ---------------------------------------------------------------------------------------------------------
// copies

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), options());
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (autograd::needs_grad({*this})) {
    autograd::record("clone", out, {*this}, [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
      return {g};
    });
  }
  return out;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = empty(shape(), options().with_dtype(dt));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (is_floating(dt) && is_floating(dtype()) && autograd::needs_grad({*this})) {
    DType src = dtype();
    autograd::record("to_dtype", out, {*this}, [src](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
      return {g.to(src)};
    });
  }
  return out;
}

Tensor Tensor::to(Device dev, bool non_blocking) const {
  if (dev == device()) return *this;
  Tensor src = contiguous();
  // A device to host copy stays in flight only into pinned memory.
  const bool async = non_blocking && src.is_cuda() && dev.is_cpu();
  Tensor out = empty(shape(), options().with_device(dev).with_pinned(async));
  copy_bytes(out.raw_data(), dev, src.raw_data(), src.device(), src.nbytes(), non_blocking);
  if constexpr (kCudaBuild) {
    // A pinned block read or written by an asynchronous copy must not be reused, nor written by the host,
    // before the copy is done: the block remembers the copy's stream and an event after it.
    if (src.is_pinned() && dev.is_cuda())
      cuda::pinned_record_stream(src.storage()->data(), cuda::current_stream(dev.index), dev.index);
    if (out.is_pinned())
      cuda::pinned_record_stream(out.storage()->data(), cuda::current_stream(src.device().index), src.device().index);
  }
  if (autograd::needs_grad({*this})) {
    Device from = device();
    autograd::record("to_device", out, {*this}, [from](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
      return {g.to(from)};
    });
  }
  return out;
}

Tensor Tensor::pin_memory() const {
  SIAM_CHECK(is_cpu(), "pin_memory: only CPU tensors can be pinned, got one on ", device().str());
  if (is_pinned()) return *this;
  Tensor out = empty(shape(), options().with_pinned(true));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (autograd::needs_grad({*this})) {
    autograd::record("pin_memory", out, {*this}, [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
      return {g};
    });
  }
  return out;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::fill_(double value) {
  check_no_grad_inplace(*this, "fill_");
  if (is_contiguous()) {
    if (is_cuda()) {
      if constexpr (kCudaBuild) {
        cuda::DeviceGuard g(device().index);
        kernels::cuda::fill(raw_data(), numel(), dtype(), value);
      }
      return *this;
    }
    kernels::cpu::fill(raw_data(), numel(), dtype(), value);
  } else {
    Tensor v = full({}, value, options()).expand(shape());
    copy_(v);
  }
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_no_grad_inplace(*this, "copy_");
  Tensor s = src.dim() == dim() && src.shape() == shape() ? src : src.expand(shape());
  if (s.device() != device()) s = s.detach().to(device());  // then a same-device strided copy
  if (is_cuda()) {
    if constexpr (kCudaBuild) {
      cuda::DeviceGuard g(device().index);
      kernels::cuda::copy_strided(static_cast<int>(dim()), shape().data(), s.raw_data(), s.strides().data(),
                                  s.dtype(), raw_data(), strides().data(), dtype());
    }
    return *this;
  }
  kernels::cpu::copy_strided(static_cast<int>(dim()), shape().data(), s.raw_data(), s.strides().data(), s.dtype(),
                             raw_data(), strides().data(), dtype());
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_no_grad_inplace(*this, "add_");
  NoGradGuard ng;
  Tensor o = alpha == 1.0 ? other : mul(other, alpha);
  copy_(add(*this, o));
  return *this;
}

Tensor& Tensor::mul_(double s) {
  check_no_grad_inplace(*this, "mul_");
  NoGradGuard ng;
  copy_(mul(*this, s));
  return *this;
}

// ---------------------------------------------------------------------------------------------------------
// autograd surface

bool Tensor::requires_grad() const { return impl().requires_grad || impl().grad_fn != nullptr; }

Tensor& Tensor::set_requires_grad(bool r) {
  SIAM_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can change requires_grad (this one comes from op '",
             impl().grad_fn->name(), "'; use detach() for a new leaf)");
  SIAM_CHECK(!r || is_floating(dtype()), "set_requires_grad: only floating tensors can require a gradient, got ",
             dtype_name(dtype()));
  impl().requires_grad = r;
  return *this;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  Tensor g = grad;
  if (!g.defined()) {
    SIAM_CHECK(numel() == 1, "backward(): a gradient is needed for a tensor of shape ", shape_str(shape()),
               " (only one-element tensors get an implicit gradient of 1)");
    g = ones(shape(), options());
  }
  autograd::run_backward(*this, g, retain_graph);
}

void Tensor::register_hook(GradHook hook) const {
  SIAM_CHECK(requires_grad(), "register_hook: the tensor does not require a gradient");
  if (is_leaf())
    impl().leaf_hooks.push_back(std::move(hook));
  else
    impl().grad_fn->pre_hooks.push_back(std::move(hook));
}

void Tensor::register_post_accumulate_hook(PostAccumulateHook hook) const {
  SIAM_CHECK(is_leaf() && requires_grad(), "register_post_accumulate_hook: only for leaf tensors that require a gradient");
  impl().post_accumulate_hooks.push_back(std::move(hook));
}

// ---------------------------------------------------------------------------------------------------------
// printing

std::string Tensor::str() const {
  std::ostringstream os;
  os << "tensor(";
  if (!defined()) return "tensor(undefined)";
  const int64_t limit = 64;
  auto vals = to_vector<double>();
  bool is_int = !is_floating(dtype());
  auto fmt = [&](double v) {
    std::ostringstream e;
    if (is_int)
      e << static_cast<int64_t>(v);
    else
      e << std::setprecision(5) << v;
    return e.str();
  };
  if (numel() <= limit) {
    // nested brackets by dim
    std::function<void(int64_t, int64_t)> rec = [&](int64_t d, int64_t base) {
      if (d == dim()) {
        os << fmt(vals[base]);
        return;
      }
      int64_t inner = 1;
      for (int64_t i = d + 1; i < dim(); ++i) inner *= shape()[i];
      os << "[";
      for (int64_t i = 0; i < shape()[d]; ++i) {
        if (i) os << (d + 1 == dim() ? ", " : ",\n" + std::string(static_cast<size_t>(8 + d), ' '));
        rec(d + 1, base + i * inner);
      }
      os << "]";
    };
    rec(0, 0);
  } else {
    os << "[" << fmt(vals[0]) << ", " << fmt(vals[1]) << ", " << fmt(vals[2]) << ", ..., " << fmt(vals[numel() - 1])
       << "]";
  }
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (!is_cpu()) os << ", device=" << device().str();
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace siam

// Joining, splitting, indexing and dropout front-ends. Joining and splitting are views and copy_ (which
// has a CUDA kernel); indexing and dropout dispatch on the device to kernels/cpu or kernels/cuda.
#include "engine/ops/shape.h"

#include "engine/autograd/node.h"
#include "engine/core/random.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "kernels/cpu/index.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/index.h"
#include "kernels/cuda/random.h"
#include "kernels/cuda/stream.h"

namespace siam {

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  SIAM_CHECK(!ts.empty(), "cat: no tensors given");
  const Tensor& first = ts[0];
  int64_t d = first.wrap_dim(dim, "cat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    ops::require_same_device("cat", t, first);
    SIAM_CHECK(t.dtype() == first.dtype(), "cat: tensor ", i, " has dtype ", dtype_name(t.dtype()), ", tensor 0 has ",
               dtype_name(first.dtype()));
    SIAM_CHECK(t.dim() == first.dim(), "cat: tensor ", i, " has shape ", shape_str(t.shape()), ", tensor 0 has ",
               shape_str(first.shape()));
    for (int64_t k = 0; k < t.dim(); ++k)
      SIAM_CHECK(k == d || t.shape()[k] == first.shape()[k], "cat: tensor ", i, " has shape ", shape_str(t.shape()),
                 ", tensor 0 has ", shape_str(first.shape()), " (they may differ only in dim ", dim, ")");
    out_shape[d] += t.shape()[d];
  }
  Tensor out = empty(out_shape, first.options());
  {
    NoGradGuard ng;
    int64_t at = 0;
    for (const auto& t : ts) {
      out.narrow(d, at, t.shape()[d]).copy_(t);
      at += t.shape()[d];
    }
  }
  if (autograd::needs_grad(ts)) {
    std::vector<int64_t> sizes;
    for (const auto& t : ts) sizes.push_back(t.shape()[d]);
    autograd::record("cat", out, ts, [sizes, d](const Tensor& g, const std::vector<bool>& need) {
      std::vector<Tensor> grads(sizes.size());
      int64_t at = 0;
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (need[i]) grads[i] = g.narrow(d, at, sizes[i]);
        at += sizes[i];
      }
      return grads;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  SIAM_CHECK(!ts.empty(), "stack: no tensors given");
  int64_t n = ts[0].dim() + 1;
  SIAM_CHECK(dim >= -n && dim < n, "stack: dim ", dim, " out of range for tensors of shape ", shape_str(ts[0].shape()));
  if (dim < 0) dim += n;
  std::vector<Tensor> u;
  for (size_t i = 0; i < ts.size(); ++i) {
    SIAM_CHECK(ts[i].shape() == ts[0].shape(), "stack: tensor ", i, " has shape ", shape_str(ts[i].shape()),
               ", tensor 0 has ", shape_str(ts[0].shape()));
    u.push_back(ts[i].unsqueeze(dim));
  }
  return cat(u, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  int64_t d = x.wrap_dim(dim, "split");
  SIAM_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  std::vector<Tensor> out;
  int64_t n = x.shape()[d];
  for (int64_t at = 0; at < n; at += split_size) out.push_back(x.narrow(d, at, std::min(split_size, n - at)));
  if (n == 0) out.push_back(x);
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  SIAM_CHECK(chunks > 0, "chunk: number of chunks must be positive, got ", chunks);
  int64_t d = x.wrap_dim(dim, "chunk");
  int64_t n = x.shape()[d];
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), d);
}

namespace {
// Validated on the host: a CUDA index is copied back first (a synchronization; out-of-range indices would
// otherwise read or write out of bounds on the device).
void check_index_range(const Tensor& index, int64_t bound, const char* op, int64_t dim, const Shape& x_shape) {
  Tensor idx = index.is_cpu() ? index : index.to(kCPU);
  const int64_t* p = idx.data<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i)
    SIAM_CHECK(p[i] >= 0 && p[i] < bound, op, ": index ", p[i], " out of range [0, ", bound, ") for dim ", dim,
               " of shape ", shape_str(x_shape));
}
Tensor as_index(const Tensor& index, const char* op) {
  SIAM_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32, op, ": index must be i64 or i32, got ",
             dtype_name(index.dtype()));
  return index.to(DType::i64).contiguous();
}
}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  ops::require_same_device("index_select", x, index);
  ops::require_floating("index_select", x);
  int64_t d = x.wrap_dim(dim, "index_select");
  SIAM_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got ", shape_str(index.shape()));
  Tensor idx = as_index(index, "index_select").reshape({-1});
  check_index_range(idx, x.shape()[d], "index_select", dim, x.shape());
  Tensor xc = x.detach().contiguous();
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < d; ++k) outer *= x.shape()[k];
  for (int64_t k = d + 1; k < x.dim(); ++k) inner *= x.shape()[k];
  Shape out_shape = x.shape();
  out_shape[d] = idx.numel();
  Tensor out = empty(out_shape, x.options());
  int64_t nx = x.shape()[d], ni = idx.numel();
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   kernels::cuda::index_select(x.dtype(), outer, nx, inner, xc.raw_data(), idx.data<int64_t>(), ni,
                                               out.raw_data()));
  } else {
    SIAM_DISPATCH_FLOAT(x.dtype(), "index_select",
                        kernels::cpu::index_select<scalar_t>(outer, nx, inner, xc.data<scalar_t>(), idx.data<int64_t>(),
                                                             ni, out.data<scalar_t>()));
  }
  if (autograd::needs_grad({x})) {
    Shape xs = x.shape();
    autograd::record("index_select", out, {x}, [idx, xs, outer, nx, inner, ni](const Tensor& g, const std::vector<bool>&) {
      Tensor gc = g.contiguous();
      Tensor gx = zeros(xs, gc.options());
      if (gc.is_cuda()) {
        SIAM_CUDA_ONLY(cuda::DeviceGuard dg(gc.device().index);
                       kernels::cuda::index_add(gc.dtype(), outer, nx, inner, gx.raw_data(), idx.data<int64_t>(), ni,
                                                gc.raw_data()));
        return std::vector<Tensor>{gx};
      }
      SIAM_DISPATCH_FLOAT(gc.dtype(), "index_select",
                          kernels::cpu::index_add<scalar_t>(outer, nx, inner, gx.data<scalar_t>(), idx.data<int64_t>(),
                                                            ni, gc.data<scalar_t>()));
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

namespace {
void check_gather_shapes(const char* op, const Tensor& x, const Tensor& idx, int64_t d) {
  SIAM_CHECK(idx.dim() == x.dim(), op, ": index ", shape_str(idx.shape()), " must have the rank of the input ",
             shape_str(x.shape()));
  for (int64_t k = 0; k < x.dim(); ++k)
    SIAM_CHECK(k == d || idx.shape()[k] <= x.shape()[k], op, ": index ", shape_str(idx.shape()),
               " larger than the input ", shape_str(x.shape()), " in dim ", k);
}
}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  ops::require_same_device("gather", x, index);
  ops::require_floating("gather", x);
  int64_t d = x.wrap_dim(dim, "gather");
  Tensor idx = as_index(index, "gather");
  check_gather_shapes("gather", x, idx, d);
  check_index_range(idx, x.shape()[d], "gather", dim, x.shape());
  Tensor xd = x.detach();
  Tensor out = empty(idx.shape(), x.options());
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   if (idx.dim() == 0) {  // the kernels want a rank of at least 1
                     const int64_t one = 1;
                     kernels::cuda::gather(x.dtype(), 1, &one, 0, xd.raw_data(), &one, idx.data<int64_t>(),
                                           out.raw_data());
                   } else {
                     kernels::cuda::gather(x.dtype(), static_cast<int>(idx.dim()), idx.shape().data(),
                                           static_cast<int>(d), xd.raw_data(), xd.strides().data(),
                                           idx.data<int64_t>(), out.raw_data());
                   });
  } else {
    SIAM_DISPATCH_FLOAT(x.dtype(), "gather",
                        kernels::cpu::gather<scalar_t>(static_cast<int>(idx.dim()), idx.shape().data(), static_cast<int>(d),
                                                       xd.data<scalar_t>(), xd.strides().data(), idx.data<int64_t>(),
                                                       out.data<scalar_t>()));
  }
  if (autograd::needs_grad({x})) {
    Shape xs = x.shape();
    autograd::record("gather", out, {x}, [idx, xs, d](const Tensor& g, const std::vector<bool>&) {
      Tensor gc = g.contiguous();
      Tensor gx = zeros(xs, gc.options());
      if (gc.is_cuda()) {
        SIAM_CUDA_ONLY(cuda::DeviceGuard dg(gc.device().index);
                       if (idx.dim() == 0) {
                         const int64_t one = 1;
                         kernels::cuda::scatter_add(gc.dtype(), 1, &one, 0, gx.raw_data(), &one, idx.data<int64_t>(),
                                                    gc.raw_data());
                       } else {
                         kernels::cuda::scatter_add(gc.dtype(), static_cast<int>(idx.dim()), idx.shape().data(),
                                                    static_cast<int>(d), gx.raw_data(), gx.strides().data(),
                                                    idx.data<int64_t>(), gc.raw_data());
                       });
        return std::vector<Tensor>{gx};
      }
      SIAM_DISPATCH_FLOAT(gc.dtype(), "gather",
                          kernels::cpu::scatter_add<scalar_t>(static_cast<int>(idx.dim()), idx.shape().data(),
                                                              static_cast<int>(d), gx.data<scalar_t>(),
                                                              gx.strides().data(), idx.data<int64_t>(),
                                                              gc.data<scalar_t>()));
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  ops::require_same_device("scatter_add", x, index);
  ops::require_same_device("scatter_add", x, src);
  ops::require_floating("scatter_add", x);
  ops::require_same_dtype("scatter_add", x, src);
  int64_t d = x.wrap_dim(dim, "scatter_add");
  Tensor idx = as_index(index, "scatter_add");
  check_gather_shapes("scatter_add", x, idx, d);
  for (int64_t k = 0; k < src.dim() && k < idx.dim(); ++k)
    SIAM_CHECK(src.dim() == idx.dim() && idx.shape()[k] <= src.shape()[k], "scatter_add: index ",
               shape_str(idx.shape()), " larger than src ", shape_str(src.shape()));
  check_index_range(idx, x.shape()[d], "scatter_add", dim, x.shape());
  Tensor out = x.detach().clone();
  // src elements at the index's coordinates, made contiguous in the index's shape
  Tensor srcc = src.detach();
  for (int64_t k = 0; k < idx.dim(); ++k) srcc = srcc.narrow(k, 0, idx.shape()[k]);
  srcc = srcc.contiguous();
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   if (idx.dim() == 0) {
                     const int64_t one = 1;
                     kernels::cuda::scatter_add(x.dtype(), 1, &one, 0, out.raw_data(), &one, idx.data<int64_t>(),
                                                srcc.raw_data());
                   } else {
                     kernels::cuda::scatter_add(x.dtype(), static_cast<int>(idx.dim()), idx.shape().data(),
                                                static_cast<int>(d), out.raw_data(), out.strides().data(),
                                                idx.data<int64_t>(), srcc.raw_data());
                   });
  } else {
    SIAM_DISPATCH_FLOAT(x.dtype(), "scatter_add",
                        kernels::cpu::scatter_add<scalar_t>(static_cast<int>(idx.dim()), idx.shape().data(),
                                                            static_cast<int>(d), out.data<scalar_t>(),
                                                            out.strides().data(), idx.data<int64_t>(),
                                                            srcc.data<scalar_t>()));
  }
  if (autograd::needs_grad({x, src})) {
    Shape ss = src.shape();
    autograd::record("scatter_add", out, {x, src}, [idx, ss, d](const Tensor& g, const std::vector<bool>& need) {
      Tensor gsrc;
      if (need[1]) {
        Tensor part = gather(g, d, idx);  // gradient of the src elements that were scattered
        gsrc = zeros(ss, g.options());
        Tensor view = gsrc;
        for (int64_t k = 0; k < idx.dim(); ++k) view = view.narrow(k, 0, idx.shape()[k]);
        view.copy_(part);
      }
      return std::vector<Tensor>{need[0] ? g : Tensor(), gsrc};
    });
  }
  return out;
}

Tensor dropout(const Tensor& x, double p, bool training) {
  SIAM_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability ", p, " outside [0, 1]");
  if (!training || p == 0.0) return x;
  ops::require_floating("dropout", x);
  if (p == 1.0) return mul(x, 0.0);
  Generator& gen = default_generator();
  Tensor mask = empty(x.shape(), TensorOptions(DType::u8, x.device()));
  uint64_t off = gen.advance(static_cast<uint64_t>(x.numel()));
  if (x.is_cuda()) {
    SIAM_CUDA_ONLY(cuda::DeviceGuard g(x.device().index);
                   kernels::cuda::bernoulli_keep(mask.data<uint8_t>(), x.numel(), gen.seed(), kStreamDropout, off, p));
  } else {
    kernels::cpu::bernoulli_keep(x.numel(), gen.seed(), kStreamDropout, off, p, mask.data<uint8_t>());
  }
  Tensor scale_mask = mul(mask.to(x.dtype()), 1.0 / (1.0 - p));  // values 0 or 1/(1-p)
  Tensor out;
  {
    NoGradGuard ng;
    out = mul(x, scale_mask);
  }
  if (autograd::needs_grad({x})) {
    autograd::record("dropout", out, {x}, [scale_mask](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{mul(g, scale_mask)};
    });
  }
  return out;
}

}  // namespace siam

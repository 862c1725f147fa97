// sync_batch_norm and nn::SyncBatchNorm; see sync_batchnorm.h.
#include "engine/nn/sync_batchnorm.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/norm.h"
#include "kernels/common/sync_bn_math.h"
#include "kernels/cpu/norm.h"
#if defined(SIAM_WITH_CUDA)
#include "kernels/cuda/stream.h"
#include "kernels/cuda/sync_batchnorm.h"
#endif

namespace siam {

namespace {

// Per-channel count, mean and sum of squared deviations of this rank's x (N, C, L): out (2C + 1) f64 =
// [n, mean_0..mean_{C-1}, M2_0..M2_{C-1}].
template <class T> void local_moments(int64_t N, int64_t C, int64_t L, const T* x, double* out) {
  out[0] = static_cast<double>(N * L);
#pragma omp parallel for schedule(static) if (N * C * L > 32768)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = x + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l) s += static_cast<double>(row[l]);
    }
    const double m = N * L > 0 ? s / static_cast<double>(N * L) : 0.0;
    double q = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = x + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l) {
        const double d = static_cast<double>(row[l]) - m;
        q += d * d;
      }
    }
    out[1 + c] = m;
    out[1 + C + c] = q;
  }
}

// Per-channel sum gy and sum gy * xhat of this rank: out (2C) f64.
template <class T>
void local_grad_sums(int64_t N, int64_t C, int64_t L, const T* x, const T* gy, const double* mean, const double* invstd,
                     double* out) {
#pragma omp parallel for schedule(static) if (N * C * L > 32768)
  for (int64_t c = 0; c < C; ++c) {
    double sg = 0, sgx = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* xr = x + (n * C + c) * L;
      const T* gr = gy + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l) {
        const double g = static_cast<double>(gr[l]);
        sg += g;
        sgx += g * (static_cast<double>(xr[l]) - mean[c]) * invstd[c];
      }
    }
    out[c] = sg;
    out[C + c] = sgx;
  }
}

// gx = w invstd (gy - sum_gy / n - xhat sum_gy_xhat / n) with the global sums.
template <class T>
void input_grad(int64_t N, int64_t C, int64_t L, const T* x, const T* gy, const double* mean, const double* invstd,
                const T* w, const double* gsum, double count, T* gx) {
#pragma omp parallel for schedule(static) if (N * C * L > 32768)
  for (int64_t c = 0; c < C; ++c) {
    const double scale = (w ? static_cast<double>(w[c]) : 1.0) * invstd[c];
    const double mg = gsum[c] / count, mgx = gsum[C + c] / count;
    for (int64_t n = 0; n < N; ++n) {
      const T* xr = x + (n * C + c) * L;
      const T* gr = gy + (n * C + c) * L;
      T* out = gx + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l)
        out[l] = static_cast<T>(kernels::sync_bn_input_grad(static_cast<double>(gr[l]), static_cast<double>(xr[l]),
                                                            mean[c], invstd[c], scale, mg, mgx));
    }
  }
}

Tensor as_param(const Tensor& p, DType dt) {
  if (!p.defined()) return Tensor();
  Tensor d = p.detach();
  if (d.dtype() != dt) d = d.to(dt);
  return d.contiguous();
}

template <class T> const T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

void check_param(const char* op, const char* what, const Tensor& p, int64_t C, const Tensor& x) {
  if (!p.defined()) return;
  if (x.is_cuda())
    ops::require_same_device(op, x, p);
  else
    ops::require_cpu(op, {p});
  SIAM_CHECK(p.dim() == 1 && p.size(0) == C, op, ": ", what, " must have shape [", C, "] for input ",
             shape_str(x.shape()), ", got ", shape_str(p.shape()));
}

#if defined(SIAM_WITH_CUDA)
// The CUDA path (kernels/cuda/sync_batchnorm.h): the same steps with every buffer on the device; the record and
// the gradient sums travel through the communicator as f64 CUDA tensors (NCCL under mpirun with GPUs). No host
// copies, except to check the global count when this rank has at most one value per channel.
Tensor sync_batch_norm_cuda(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                            const Tensor& weight, const Tensor& bias, double momentum, double eps,
                            dist::Communicator& comm, int64_t N, int64_t C, int64_t L) {
  const char* op = "sync_batch_norm";
  namespace kc = kernels::cuda;
  const DType dt = x.dtype();
  const Device dev = x.device();
  cuda::DeviceGuard g(dev.index);
  const TensorOptions f64(DType::f64, dev);
  Tensor xc = x.detach().contiguous();
  Tensor wc = as_param(weight, dt), bc = as_param(bias, dt);
  Tensor rm = as_param(running_mean, dt), rv = as_param(running_var, dt);  // copies unless contiguous dt

  Tensor mine = empty({1, 2 * C + 1}, f64);
  kc::sync_bn_moments(dt, N, C, L, xc.raw_data(), mine.data<double>());
  Tensor all = comm.all_gather(mine);  // (W, 2C + 1) on the device
  SIAM_CHECK(all.is_cuda() && all.device() == dev && all.dim() == 2 && all.size(1) == 2 * C + 1, op,
             ": the communicator '", comm.name(), "' returned ", shape_str(all.shape()), " on ", all.device().str(),
             " for a record of ", 2 * C + 1, " doubles on ", dev.str());
  all = all.contiguous();
  const int W = static_cast<int>(all.size(0));
  Tensor mean = empty({C}, f64), invstd = empty({C}, f64), count = empty({1}, f64);
  kc::sync_bn_merge(dt, W, C, all.data<double>(), eps, momentum, rm.defined() ? rm.raw_data() : nullptr,
                    rv.defined() ? rv.raw_data() : nullptr, mean.data<double>(), invstd.data<double>(),
                    count.data<double>());
  if (N * L <= 1) {  // only then can the global count be 1 or less: read it (one host synchronization)
    const double n = count.to(kCPU).item();
    SIAM_CHECK(n > 1, op, ": training needs more than one value per channel over all ranks, got input ",
               shape_str(x.shape()), " on rank ", comm.rank(), " and ", n, " values in all");
  }
  {  // running statistics that were not contiguous dt tensors were updated in a copy: write it back
    NoGradGuard ng;
    if (rm.defined() && rm.storage() != running_mean.storage()) Tensor(running_mean).copy_(rm);
    if (rv.defined() && rv.storage() != running_var.storage()) Tensor(running_var).copy_(rv);
  }
  Tensor y = empty(x.shape(), x.options());
  kc::sync_bn_apply(dt, N, C, L, xc.raw_data(), mean.data<double>(), invstd.data<double>(),
                    wc.defined() ? wc.raw_data() : nullptr, bc.defined() ? bc.raw_data() : nullptr, y.raw_data());

  if (autograd::needs_grad({x, weight, bias})) {
    dist::Communicator* cm = &comm;
    const Shape xs = x.shape();
    autograd::record(op, y, {x, weight, bias}, [=](const Tensor& gy, const std::vector<bool>& needs) {
      cuda::DeviceGuard dg(dev.index);
      Tensor gyc = gy.to(dt).contiguous();
      SIAM_CHECK(gyc.device() == dev, op, ": the gradient is on ", gyc.device().str(), ", the input on ", dev.str());
      Tensor sums = empty({2 * C}, f64);
      Tensor gx, gw, gb;
      if (needs[1]) gw = empty({C}, gyc.options());
      if (needs[2]) gb = empty({C}, gyc.options());
      kc::sync_bn_grad_sums(dt, N, C, L, xc.raw_data(), gyc.raw_data(), mean.data<double>(), invstd.data<double>(),
                            sums.data<double>(), gw.defined() ? gw.raw_data() : nullptr,
                            gb.defined() ? gb.raw_data() : nullptr);
      if (needs[0]) {
        cm->all_reduce(sums, dist::ReduceOp::sum);
        gx = empty(xs, gyc.options());
        kc::sync_bn_input_grad(dt, N, C, L, xc.raw_data(), gyc.raw_data(), mean.data<double>(), invstd.data<double>(),
                               wc.defined() ? wc.raw_data() : nullptr, sums.data<double>(), count.data<double>(),
                               gx.raw_data());
      }
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return y;
}

#endif

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, double momentum, double eps, dist::Communicator& comm) {
  const char* op = "sync_batch_norm";
  SIAM_CHECK(x.defined(), op, ": input is undefined");
  if (!x.is_cuda()) ops::require_cpu(op, {x, running_mean, running_var, weight, bias});
  ops::require_floating(op, x);
  SIAM_CHECK(x.dim() >= 2 && x.dim() <= 4, op, ": input must be (N, C), (N, C, L) or (N, C, H, W), got ",
             shape_str(x.shape()));
  SIAM_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
  const int64_t N = x.size(0), C = x.size(1);
  const int64_t L = N * C > 0 ? x.numel() / (N * C) : 1;
  check_param(op, "weight", weight, C, x);
  check_param(op, "bias", bias, C, x);
  check_param(op, "running_mean", running_mean, C, x);
  check_param(op, "running_var", running_var, C, x);
  if (weight.defined()) ops::require_same_dtype(op, x, weight);
  if (bias.defined()) ops::require_same_dtype(op, x, bias);

#if defined(SIAM_WITH_CUDA)
  if (x.is_cuda())
    return sync_batch_norm_cuda(x, running_mean, running_var, weight, bias, momentum, eps, comm, N, C, L);
#endif

  const DType dt = x.dtype();
  Tensor xc = x.detach().contiguous();
  Tensor wc = as_param(weight, dt), bc = as_param(bias, dt);

  // Global statistics: all_gather of every rank's (n_r, mean_r, M2_r), merged in rank order.
  Tensor mine = empty({1, 2 * C + 1}, DType::f64);
  SIAM_DISPATCH_FLOAT(dt, op, local_moments<scalar_t>(N, C, L, xc.data<scalar_t>(), mine.data<double>()));
  Tensor all = comm.all_gather(mine);  // (W, 2C + 1)
  const int W = static_cast<int>(all.size(0));
  const double* a = all.data<double>();
  const double count = kernels::sync_bn_count(a, W, C);
  SIAM_CHECK(count > 1, op, ": training needs more than one value per channel over all ranks, got input ",
             shape_str(x.shape()), " on rank ", comm.rank(), " and ", count, " values in all");
  auto mean = std::make_shared<std::vector<double>>(C, 0.0);
  auto invstd = std::make_shared<std::vector<double>>(C, 0.0);
  std::vector<double> var(C, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    kernels::sync_bn_merge(a, W, C, c, count, (*mean)[c], var[c]);
    (*invstd)[c] = 1.0 / std::sqrt(var[c] + eps);
  }

  // y = (x - mean) * invstd * w + b, through batch_norm's eval kernel with the global statistics.
  Tensor y = empty(x.shape(), x.options());
  {
    Tensor mt = from_vector(*mean, {C}, dt), it = from_vector(*invstd, {C}, dt);
    SIAM_DISPATCH_FLOAT(dt, op,
                        kernels::cpu::batch_norm_apply<scalar_t>(N, C, L, xc.data<scalar_t>(), mt.data<scalar_t>(),
                                                                 it.data<scalar_t>(), ptr_or_null<scalar_t>(wc),
                                                                 ptr_or_null<scalar_t>(bc), y.data<scalar_t>()));
  }
  {
    NoGradGuard ng;
    const double unbias = count / (count - 1);
    if (running_mean.defined()) {
      auto rm = running_mean.to_vector<double>();
      for (int64_t c = 0; c < C; ++c) rm[c] = kernels::sync_bn_running(rm[c], (*mean)[c], momentum);
      Tensor(running_mean).copy_(from_vector(rm, {C}, DType::f64));
    }
    if (running_var.defined()) {
      auto rv = running_var.to_vector<double>();
      for (int64_t c = 0; c < C; ++c) rv[c] = kernels::sync_bn_running(rv[c], var[c] * unbias, momentum);
      Tensor(running_var).copy_(from_vector(rv, {C}, DType::f64));
    }
  }

  if (autograd::needs_grad({x, weight, bias})) {
    dist::Communicator* cm = &comm;
    const Shape xs = x.shape();
    autograd::record(op, y, {x, weight, bias}, [=](const Tensor& gy, const std::vector<bool>& needs) {
      Tensor gyc = gy.contiguous();
      // (sum gy, sum gy xhat) per channel: local for gw, gb; summed over the ranks for gx.
      Tensor sums = empty({2 * C}, DType::f64);
      SIAM_DISPATCH_FLOAT(gyc.dtype(), "sync_batch_norm",
                          local_grad_sums<scalar_t>(N, C, L, xc.data<scalar_t>(), gyc.data<scalar_t>(), mean->data(),
                                                    invstd->data(), sums.data<double>()));
      Tensor gx, gw, gb;
      const double* ls = sums.data<double>();
      if (needs[1]) {
        std::vector<double> v(ls + C, ls + 2 * C);
        gw = from_vector(v, {C}, gyc.dtype());
      }
      if (needs[2]) {
        std::vector<double> v(ls, ls + C);
        gb = from_vector(v, {C}, gyc.dtype());
      }
      if (needs[0]) {
        cm->all_reduce(sums, dist::ReduceOp::sum);
        gx = empty(xs, gyc.options());
        SIAM_DISPATCH_FLOAT(
            gyc.dtype(), "sync_batch_norm",
            input_grad<scalar_t>(N, C, L, xc.data<scalar_t>(), gyc.data<scalar_t>(), mean->data(), invstd->data(),
                                 ptr_or_null<scalar_t>(wc), sums.data<double>(), count, gx.data<scalar_t>()));
      }
      return std::vector<Tensor>{gx, gw, gb};
    });
  }
  return y;
}

namespace nn {

void SyncBatchNorm::check_input(const Tensor& x) const {
  SIAM_CHECK(x.dim() >= 2 && x.dim() <= 4, "SyncBatchNorm(", num_features(),
             "): expects input (N, C), (N, C, L) or (N, C, H, W), got ", shape_str(x.shape()));
}

}  // namespace nn
}  // namespace siam

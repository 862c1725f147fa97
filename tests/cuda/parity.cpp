// The parity harness (see parity.h).
#include "tests/cuda/parity.h"

#include <cmath>
#include <sstream>

#include "engine/core/random.h"

namespace siam::test {

namespace {

std::string compare(const Tensor& cpu, const Tensor& dev, DType dt, const std::string& what) {
  std::ostringstream os;
  if (!cpu.defined() || !dev.defined()) {
    if (cpu.defined() != dev.defined()) os << what << ": defined on " << (cpu.defined() ? "cpu" : "cuda") << " only";
    return os.str();
  }
  if (cpu.shape() != dev.shape()) {
    os << what << ": shape " << shape_str(dev.shape()) << " on cuda, " << shape_str(cpu.shape()) << " on cpu";
    return os.str();
  }
  if (dev.is_cpu()) return what + ": the CUDA run produced a CPU tensor";
  const double atol = dt == DType::f64 ? 1e-10 : 1e-5, rtol = dt == DType::f64 ? 1e-9 : 1e-4;
  auto a = cpu.to_vector<double>(), b = dev.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    const bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    if (both_nan || a[i] == b[i]) continue;
    if (!(std::abs(a[i] - b[i]) <= atol + rtol * std::abs(a[i]))) {
      os << what << ": element " << i << " is " << b[i] << " on cuda, " << a[i] << " on cpu (of " << a.size() << ")";
      return os.str();
    }
  }
  return "";
}

// xc's values on `device` as a non-contiguous view at storage offset 1: a step-2 slice of the last dim of a
// larger tensor (rank >= 1), or a one-element narrow (rank 0). The larger tensor is filled on the CPU (NaN
// between the values, so a kernel that ignores the stride or the offset reads NaN) and moved as it is.
Tensor strided_on(const Tensor& xc, Device device) {
  if (xc.dim() == 0) {
    Tensor big = full({2}, std::nan(""), xc.options());
    big.narrow(0, 1, 1).copy_(xc.reshape({1}));
    return big.to(device).narrow(0, 1, 1).squeeze(0);
  }
  Shape s = xc.shape();
  const int64_t n = s.back();
  s.back() = 2 * n + 1;
  Tensor big = full(s, is_floating(xc.dtype()) ? std::nan("") : -1.0, xc.options());
  big.slice(-1, 1, 2 * n + 1, 2).copy_(xc);
  return big.to(device).slice(-1, 1, 2 * n + 1, 2);
}

}  // namespace

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::contiguous: return "contiguous";
    case Layout::transposed: return "transposed";
    case Layout::strided: return "strided at an offset";
  }
  return "?";
}

bool transposes_an_input(const ParityCase& c) {
  for (const auto& x : c.inputs)
    if (x.dim() >= 2) return true;
  return false;
}

std::string run_parity_case(const ParityCase& c, DType dt, Layout layout, Device device) {
  std::vector<Tensor> cpu_in, dev_in;
  for (const auto& x : c.inputs) {
    const bool fl = is_floating(x.dtype());
    Tensor xc = fl ? x.to(dt) : x;
    Tensor xd;
    if (layout == Layout::strided) {
      xd = strided_on(xc, device);
      if (xd.is_contiguous() && xd.numel() > 1) return "the strided layout made a contiguous input";
    } else {
      xd = xc.to(device);
      if (layout == Layout::transposed && xd.dim() >= 2) xd = xd.transpose(0, -1).contiguous().transpose(0, -1);
    }
    xc = xc.detach();
    xd = xd.detach();
    if (c.grad && fl) {
      xc.set_requires_grad(true);
      xd.set_requires_grad(true);
    }
    cpu_in.push_back(xc);
    dev_in.push_back(xd);
  }
  Tensor yc = c.fn(cpu_in);
  Tensor yd = c.fn(dev_in);
  std::string m = compare(yc, yd, dt, "output");
  if (!m.empty() || !c.grad || !yc.requires_grad()) return m;
  Tensor g = uniform(yc.shape(), -1.0, 1.0, TensorOptions(yc.dtype()));
  yc.backward(g);
  yd.backward(g.to(device));
  for (size_t i = 0; i < cpu_in.size(); ++i) {
    if (!cpu_in[i].requires_grad()) continue;
    m = compare(cpu_in[i].grad(), dev_in[i].grad(), dt, "gradient of input " + std::to_string(i));
    if (!m.empty()) return m;
  }
  return "";
}

}  // namespace siam::test

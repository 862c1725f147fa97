#include "tests/unit/gradcheck.h"

#include <cmath>
#include <sstream>

#include "engine/core/random.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "tests/unit/op_samples.h"

namespace siam::test {

std::map<std::string, std::vector<SampleFn>>& sample_registry() {
  static std::map<std::string, std::vector<SampleFn>> r;
  return r;
}

Tensor rnd(const Shape& shape, double lo, double hi) { return uniform(shape, lo, hi, DType::f64); }

Tensor rnd_noncontig(const Shape& shape, double lo, double hi) {
  if (shape.size() < 2) {
    // every other element of a longer vector
    Shape s = shape;
    if (s.empty()) return rnd(shape, lo, hi);
    s[0] *= 2;
    return rnd(s, lo, hi).slice(0, 0, s[0], 2);
  }
  Shape s = shape;
  std::swap(s[0], s[1]);
  return rnd(s, lo, hi).transpose(0, 1);
}

namespace {
// Element offsets (in elements, from the storage start) of every logical element, row-major.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offs;
  offs.reserve(static_cast<size_t>(t.numel()));
  std::vector<int64_t> idx(t.dim(), 0);
  for (int64_t n = 0; n < t.numel(); ++n) {
    int64_t o = t.offset();
    for (int64_t d = 0; d < t.dim(); ++d) o += idx[d] * t.strides()[d];
    offs.push_back(o);
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      if (++idx[d] < t.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return offs;
}
}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn, std::vector<Tensor> inputs,
                          double atol, double rtol, const std::vector<bool>& skip, double h) {
  GradcheckResult res;
  std::vector<bool> diff(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    diff[i] = inputs[i].defined() && inputs[i].dtype() == DType::f64 && !(i < skip.size() && skip[i]);
    if (diff[i]) {
      // a fresh leaf with the same geometry (keeps non-contiguous layouts)
      inputs[i] = inputs[i].detach();
      inputs[i].set_requires_grad(true);
    }
  }
  Tensor out = fn(inputs);
  Tensor w = uniform(out.shape(), 0.5, 1.5, DType::f64);
  auto loss_of = [&](const std::vector<Tensor>& in) {
    NoGradGuard ng;
    return sum(mul(fn(in), w)).item();
  };
  Tensor l = sum(mul(out, w));
  l.backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!diff[i]) continue;
    Tensor g = inputs[i].grad();
    std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(inputs[i].numel(), 0.0);
    double* base = static_cast<double*>(inputs[i].storage()->data());
    auto offs = element_offsets(inputs[i]);
    for (size_t e = 0; e < offs.size(); ++e) {
      double orig = base[offs[e]];
      base[offs[e]] = orig + h;
      double lp = loss_of(inputs);
      base[offs[e]] = orig - h;
      double lm = loss_of(inputs);
      base[offs[e]] = orig;
      double numeric = (lp - lm) / (2 * h);
      double a = analytic[e];
      if (!(std::abs(a - numeric) <= atol + rtol * std::abs(numeric))) {
        std::ostringstream os;
        os << "input " << i << " " << shape_str(inputs[i].shape()) << " element " << e << ": analytic " << a
           << " vs numeric " << numeric;
        res.ok = false;
        res.message = os.str();
        return res;
      }
    }
  }
  return res;
}

}  // namespace siam::test

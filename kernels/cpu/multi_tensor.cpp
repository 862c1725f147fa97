// Multi-tensor EMA, copy, SGD and LARS steps over a chunk plan (see multi_tensor.h for the layout and the math).
#include "kernels/cpu/multi_tensor.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

namespace siam::kernels::cpu {

MtPlan mt_plan(const int64_t* numel, int64_t n, int64_t chunk) {
  MtPlan plan;
  int64_t pos = 0;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t off = 0; off < numel[t];) {
      if (pos % chunk == 0) plan.chunk_begin.push_back(static_cast<int64_t>(plan.segments.size()));
      const int64_t len = std::min(chunk - pos % chunk, numel[t] - off);
      plan.segments.push_back({static_cast<int32_t>(t), off, len});
      off += len;
      pos += len;
    }
  }
  plan.chunk_begin.push_back(static_cast<int64_t>(plan.segments.size()));
  plan.total = pos;
  return plan;
}

namespace {

// Calls f(segment) for every segment, OpenMP over chunks (one chunk per iteration, static schedule).
template <class F>
void for_each_segment(const MtPlan& plan, F&& f) {
  const int64_t chunks = plan.num_chunks();
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t s = plan.chunk_begin[c]; s < plan.chunk_begin[c + 1]; ++s) f(s, plan.segments[s]);
}

}  // namespace

template <class T>
void mt_ema(const MtPlan& plan, T* const* target, const T* const* online, T m, T one_minus_m) {
  for_each_segment(plan, [&](int64_t, const MtSegment& sg) {
    T* __restrict__ t = target[sg.tensor] + sg.offset;
    const T* __restrict__ o = online[sg.tensor] + sg.offset;
#pragma omp simd
    for (int64_t k = 0; k < sg.len; ++k) t[k] = m * t[k] + one_minus_m * o[k];
  });
}

void mt_copy_bytes(const MtPlan& plan, void* const* dst, const void* const* src) {
  for_each_segment(plan, [&](int64_t, const MtSegment& sg) {
    std::memcpy(static_cast<char*>(dst[sg.tensor]) + sg.offset, static_cast<const char*>(src[sg.tensor]) + sg.offset,
                static_cast<size_t>(sg.len));
  });
}

template <class T>
void mt_sgd(const MtPlan& plan, const MtSgdArgs& a, T* const* p, const T* const* g, T* const* buf,
            const uint8_t* init) {
  const T wd = static_cast<T>(a.weight_decay), mom = static_cast<T>(a.momentum);
  const T damp = static_cast<T>(1.0 - a.dampening), neg_lr = static_cast<T>(-a.lr);
  const bool has_wd = a.weight_decay != 0, has_mom = a.momentum != 0, nesterov = a.nesterov;
  for_each_segment(plan, [&](int64_t, const MtSegment& sg) {
    T* __restrict__ pp = p[sg.tensor] + sg.offset;
    const T* __restrict__ gg = g[sg.tensor] + sg.offset;
    const int64_t n = sg.len;
    if (!has_mom) {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) {
        const T d = has_wd ? gg[k] + pp[k] * wd : gg[k];
        pp[k] = pp[k] + d * neg_lr;
      }
      return;
    }
    T* __restrict__ bb = buf[sg.tensor] + sg.offset;
    if (init[sg.tensor]) {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) {
        const T d = has_wd ? gg[k] + pp[k] * wd : gg[k];
        bb[k] = d;
        const T u = nesterov ? d + d * mom : d;
        pp[k] = pp[k] + u * neg_lr;
      }
    } else {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) {
        const T d = has_wd ? gg[k] + pp[k] * wd : gg[k];
        const T b = bb[k] * mom + d * damp;
        bb[k] = b;
        const T u = nesterov ? d + b * mom : b;
        pp[k] = pp[k] + u * neg_lr;
      }
    }
  });
}

template <class T>
void mt_lars_norms(const MtPlan& plan, double weight_decay, const T* const* p, const T* const* g, double* p_sq,
                   double* d_sq) {
  const T wd = static_cast<T>(weight_decay);
  std::vector<double> part(2 * plan.segments.size());  // (segments, 2): sum p^2, sum d^2
  for_each_segment(plan, [&](int64_t s, const MtSegment& sg) {
    const T* __restrict__ pp = p[sg.tensor] + sg.offset;
    const T* __restrict__ gg = g[sg.tensor] + sg.offset;
    double sp = 0, sd = 0;
#pragma omp simd reduction(+ : sp, sd)
    for (int64_t k = 0; k < sg.len; ++k) {
      const T d = gg[k] + pp[k] * wd;
      sp += static_cast<double>(pp[k]) * static_cast<double>(pp[k]);
      sd += static_cast<double>(d) * static_cast<double>(d);
    }
    part[2 * s] = sp;
    part[2 * s + 1] = sd;
  });
  for (size_t s = 0; s < plan.segments.size(); ++s) {
    const int32_t t = plan.segments[s].tensor;
    p_sq[t] += part[2 * s];
    d_sq[t] += part[2 * s + 1];
  }
}

template <class T>
void mt_lars(const MtPlan& plan, const MtLarsArgs& a, const double* wd, const double* slr, T* const* p,
             const T* const* g, T* const* v) {
  const T mom = static_cast<T>(a.momentum), neg_mom = static_cast<T>(-a.momentum);
  const bool has_mom = a.momentum != 0, nesterov = a.nesterov;
  for_each_segment(plan, [&](int64_t, const MtSegment& sg) {
    const T w = static_cast<T>(wd[sg.tensor]), lr = static_cast<T>(slr[sg.tensor]),
            neg_lr = static_cast<T>(-slr[sg.tensor]);
    const bool has_wd = wd[sg.tensor] != 0;
    T* __restrict__ pp = p[sg.tensor] + sg.offset;
    const T* __restrict__ gg = g[sg.tensor] + sg.offset;
    const int64_t n = sg.len;
    if (!has_mom) {
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) {
        const T d = has_wd ? gg[k] + pp[k] * w : gg[k];
        pp[k] = pp[k] + d * neg_lr;
      }
      return;
    }
    T* __restrict__ vv = v[sg.tensor] + sg.offset;
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) {
      const T d = has_wd ? gg[k] + pp[k] * w : gg[k];
      const T b = vv[k] * mom + d * lr;
      vv[k] = b;
      pp[k] = nesterov ? (pp[k] + b * neg_mom) + d * neg_lr : pp[k] - b;
    }
  });
}

#define SIAM_MT_INSTANTIATE(T)                                                                               \
  template void mt_ema<T>(const MtPlan&, T* const*, const T* const*, T, T);                                  \
  template void mt_sgd<T>(const MtPlan&, const MtSgdArgs&, T* const*, const T* const*, T* const*,            \
                          const uint8_t*);                                                                   \
  template void mt_lars_norms<T>(const MtPlan&, double, const T* const*, const T* const*, double*, double*); \
  template void mt_lars<T>(const MtPlan&, const MtLarsArgs&, const double*, const double*, T* const*,        \
                           const T* const*, T* const*);
SIAM_MT_INSTANTIATE(float)
SIAM_MT_INSTANTIATE(double)
#undef SIAM_MT_INSTANTIATE

}  // namespace siam::kernels::cpu

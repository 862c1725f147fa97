#include "kernels/cpu/conv2d_onednn.h"

#include "engine/core/error.h"

#ifdef SIAM_WITH_ONEDNN

#include <omp.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace siam::kernels::cpu {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

std::string geom_str(const Conv2dGeom& g) {
  return detail::str_cat("x (", g.N, ", ", g.C, ", ", g.H, ", ", g.W, "), w (", g.K, ", ", g.C / g.groups, ", ", g.R,
                         ", ", g.S, "), stride (", g.sh, ", ", g.sw, "), padding (", g.ph, ", ", g.pw, "), dilation (",
                         g.dh, ", ", g.dw, "), groups ", g.groups);
}

// ------------------------------------------------------------------------------------- per-thread buffers

// Grow-only 64-byte aligned buffers of the calling thread, one per role, so that the blocked copies of large
// activations do not page-fault on every call.
enum Slot { kSrc, kWei, kDst, kDiffDst, kScratch, kSlots };

struct Arena {
  struct Buf {
    void* p = nullptr;
    size_t n = 0;
  };
  std::array<Buf, kSlots> bufs{};
  ~Arena() {
    for (auto& b : bufs) std::free(b.p);
  }
  void* get(Slot s, size_t bytes) {
    Buf& b = bufs[s];
    if (b.n < bytes) {
      std::free(b.p);
      b.n = (bytes + 4095) / 4096 * 4096;
      b.p = std::aligned_alloc(64, b.n);
      SIAM_ASSERT(b.p != nullptr, "conv2d (oneDNN): out of memory for a ", bytes, "-byte buffer");
    }
    return b.p;
  }
};

Arena& arena() {
  thread_local Arena a;
  return a;
}

// --------------------------------------------------------------------------------------------- primitives

enum class Pass { kFwd, kBwdData, kBwdWeights };

struct Key {
  std::array<int64_t, 16> v{};
  bool operator==(const Key& o) const { return v == o.v; }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = 1469598103934665603ull;
    for (int64_t x : k.v) h = (h ^ static_cast<size_t>(x)) * 1099511628211ull;
    return h;
  }
};

Key make_key(const Conv2dGeom& g, Pass pass, bool bias) {
  Key k;
  k.v = {g.N,
         g.C,
         g.H,
         g.W,
         g.K,
         g.R,
         g.S,
         g.sh,
         g.sw,
         g.ph,
         g.pw,
         g.dh,
         g.dw,
         g.groups,
         static_cast<int64_t>(pass) * 2 + (bias ? 1 : 0),
         static_cast<int64_t>(omp_get_max_threads())};
  return k;
}

// One convolution pass: the primitive, the layouts it wants and the reorders between them and plain NCHW/OIHW.
// For kBwdData, src is diff_src and wei the weights; for kBwdWeights, wei is diff_weights and bias diff_bias.
struct Prim {
  dnnl::primitive prim;
  memory::desc src, wei, dst, scratch;
  memory::desc src_plain, wei_plain, dst_plain, bias_plain;
  // reorders plain -> chosen layout (inputs) or chosen -> plain (outputs); empty when the layouts agree
  std::optional<dnnl::reorder> src_r, wei_r, dst_r;
};

memory::dims dims_src(const Conv2dGeom& g) { return {g.N, g.C, g.H, g.W}; }
memory::dims dims_dst(const Conv2dGeom& g) { return {g.N, g.K, g.OH, g.OW}; }
memory::dims dims_wei(const Conv2dGeom& g) {
  if (g.groups == 1) return {g.K, g.C, g.R, g.S};
  return {g.groups, g.K / g.groups, g.C / g.groups, g.R, g.S};
}
tag plain_wei_tag(const Conv2dGeom& g) { return g.groups == 1 ? tag::oihw : tag::goihw; }

// Reorder from a into b when their layouts differ.
std::optional<dnnl::reorder> reorder_if(const memory::desc& a, const memory::desc& b) {
  if (a == b) return std::nullopt;
  return dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), a, cpu_engine(), b));
}

dnnl::convolution_forward::primitive_desc fwd_pd(const Conv2dGeom& g, bool bias, const dnnl::primitive_attr& attr) {
  const memory::desc src(dims_src(g), dt::f32, tag::any), dst(dims_dst(g), dt::f32, tag::any);
  const memory::desc wei(dims_wei(g), dt::f32, tag::any), b({g.K}, dt::f32, tag::any);
  const memory::dims strides{g.sh, g.sw}, dil{g.dh - 1, g.dw - 1}, pl{g.ph, g.pw};
  // Right padding such that the output size comes out exactly (as PyTorch's ideep computes it; may be
  // negative when the last input rows are never read).
  const memory::dims pr{(g.OH - 1) * g.sh + (g.R - 1) * g.dh + 1 - g.H - g.ph,
                        (g.OW - 1) * g.sw + (g.S - 1) * g.dw + 1 - g.W - g.pw};
  auto d = bias
               ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                 src, wei, b, dst, strides, dil, pl, pr)
               : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                 src, wei, dst, strides, dil, pl, pr);
  return dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
}

std::shared_ptr<const Prim> build(const Conv2dGeom& g, Pass pass, bool bias) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto p = std::make_shared<Prim>();
  p->src_plain = memory::desc(dims_src(g), dt::f32, tag::nchw);
  p->dst_plain = memory::desc(dims_dst(g), dt::f32, tag::nchw);
  p->wei_plain = memory::desc(dims_wei(g), dt::f32, plain_wei_tag(g));
  p->bias_plain = memory::desc({g.K}, dt::f32, tag::x);
  const memory::dims strides{g.sh, g.sw}, dil{g.dh - 1, g.dw - 1}, pl{g.ph, g.pw};
  const memory::dims pr{(g.OH - 1) * g.sh + (g.R - 1) * g.dh + 1 - g.H - g.ph,
                        (g.OW - 1) * g.sw + (g.S - 1) * g.dw + 1 - g.W - g.pw};
  const memory::desc src_any(dims_src(g), dt::f32, tag::any), dst_any(dims_dst(g), dt::f32, tag::any);
  const memory::desc wei_any(dims_wei(g), dt::f32, tag::any);
  if (pass == Pass::kFwd) {
    auto pd = fwd_pd(g, bias, attr);
    p->prim = dnnl::convolution_forward(pd);
    p->src = pd.src_desc(), p->wei = pd.weights_desc(), p->dst = pd.dst_desc(), p->scratch = pd.scratchpad_desc();
    p->src_r = reorder_if(p->src_plain, p->src);
    p->wei_r = reorder_if(p->wei_plain, p->wei);
    p->dst_r = reorder_if(p->dst, p->dst_plain);
  } else if (pass == Pass::kBwdData) {
    auto hint = fwd_pd(g, false, attr);
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, src_any, wei_any, dst_any, strides,
                                            dil, pl, pr);
    dnnl::convolution_backward_data::primitive_desc pd(d, attr, cpu_engine(), hint);
    p->prim = dnnl::convolution_backward_data(pd);
    p->src = pd.diff_src_desc(), p->wei = pd.weights_desc(), p->dst = pd.diff_dst_desc();
    p->scratch = pd.scratchpad_desc();
    p->src_r = reorder_if(p->src, p->src_plain);
    p->wei_r = reorder_if(p->wei_plain, p->wei);
    p->dst_r = reorder_if(p->dst_plain, p->dst);
  } else {
    auto hint = fwd_pd(g, bias, attr);
    const memory::desc b_any({g.K}, dt::f32, tag::any);
    auto d = bias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src_any, wei_any,
                                                             b_any, dst_any, strides, dil, pl, pr)
                  : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src_any, wei_any,
                                                             dst_any, strides, dil, pl, pr);
    dnnl::convolution_backward_weights::primitive_desc pd(d, attr, cpu_engine(), hint);
    p->prim = dnnl::convolution_backward_weights(pd);
    p->src = pd.src_desc(), p->wei = pd.diff_weights_desc(), p->dst = pd.diff_dst_desc();
    p->scratch = pd.scratchpad_desc();
    SIAM_ASSERT(!bias || pd.diff_bias_desc() == p->bias_plain, "conv2d (oneDNN): unexpected diff_bias layout");
    p->src_r = reorder_if(p->src_plain, p->src);
    p->wei_r = reorder_if(p->wei, p->wei_plain);
    p->dst_r = reorder_if(p->dst_plain, p->dst);
  }
  return p;
}

// Primitives by (geometry, pass, bias, threads). A training run sees a few dozen shapes; should a program cycle
// through many more, the cache is simply emptied when it reaches kMaxEntries.
constexpr size_t kMaxEntries = 512;

std::shared_ptr<const Prim> get(const Conv2dGeom& g, Pass pass, bool bias) {
  static std::mutex mu;
  static std::unordered_map<Key, std::shared_ptr<const Prim>, KeyHash> cache;
  const Key k = make_key(g, pass, bias);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(k);
    if (it != cache.end()) return it->second;
  }
  std::shared_ptr<const Prim> p;
  try {
    p = build(g, pass, bias);
  } catch (const dnnl::error& e) {
    SIAM_FAIL("conv2d (oneDNN): cannot create the ",
              pass == Pass::kFwd       ? "forward"
              : pass == Pass::kBwdData ? "backward-data"
                                       : "backward-weights",
              " primitive for ", geom_str(g), ": ", e.what());
  }
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kMaxEntries) cache.clear();
  return cache.emplace(k, p).first->second;
}

// Memory for `md` over the plain buffer `plain` when no reorder is needed, else over the arena slot.
memory bind(const memory::desc& md, bool reordered, void* plain, Slot slot) {
  return memory(md, cpu_engine(), reordered ? arena().get(slot, md.get_size()) : plain);
}

void run(const dnnl::primitive& p, dnnl::stream& s, std::unordered_map<int, memory> args) { p.execute(s, args); }

size_t scratch_bytes(const Prim& p) { return p.scratch.get_size(); }

}  // namespace

bool conv2d_onednn_available() { return true; }

bool conv2d_onednn_preferred(const Conv2dGeom& g) {
  const bool strided_1x1 = g.R == 1 && g.S == 1 && (g.sh > 1 || g.sw > 1);
  return !strided_1x1 && g.C != 1;
}

const char* conv2d_onednn_info() {
  static const std::string info = [] {
    const dnnl_version_t* v = dnnl_version();
    const char* name = "isa other";
    switch (dnnl::get_effective_cpu_isa()) {
      case dnnl::cpu_isa::avx2: name = "avx2"; break;
      case dnnl::cpu_isa::avx2_vnni: name = "avx2_vnni"; break;
      case dnnl::cpu_isa::avx512_core: name = "avx512_core"; break;
      case dnnl::cpu_isa::avx512_core_vnni: name = "avx512_core_vnni"; break;
      case dnnl::cpu_isa::avx512_core_bf16: name = "avx512_core_bf16"; break;
      case dnnl::cpu_isa::avx512_core_amx: name = "avx512_core_amx"; break;
      default: break;
    }
    return detail::str_cat("oneDNN ", v->major, ".", v->minor, ".", v->patch, " (cpu runtime ",
                           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OMP" : "other", ", ", name, ")");
  }();
  return info.c_str();
}

void conv2d_forward_onednn(const Conv2dGeom& g, const float* x, const float* w, const float* b, float* y) {
  if (g.N == 0) return;
  auto p = get(g, Pass::kFwd, b != nullptr);
  dnnl::stream s(cpu_engine());
  memory xp(p->src_plain, cpu_engine(), const_cast<float*>(x)), wp(p->wei_plain, cpu_engine(), const_cast<float*>(w));
  memory yp(p->dst_plain, cpu_engine(), y);
  memory xm = bind(p->src, p->src_r.has_value(), const_cast<float*>(x), kSrc);
  memory wm = bind(p->wei, p->wei_r.has_value(), const_cast<float*>(w), kWei);
  memory ym = bind(p->dst, p->dst_r.has_value(), y, kDst);
  memory sm(p->scratch, cpu_engine(), arena().get(kScratch, scratch_bytes(*p)));
  if (p->src_r) p->src_r->execute(s, xp, xm);
  if (p->wei_r) p->wei_r->execute(s, wp, wm);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}, {DNNL_ARG_SCRATCHPAD, sm}};
  if (b) args.emplace(DNNL_ARG_BIAS, memory(p->bias_plain, cpu_engine(), const_cast<float*>(b)));
  run(p->prim, s, std::move(args));
  if (p->dst_r) p->dst_r->execute(s, ym, yp);
  s.wait();
}

void conv2d_backward_onednn(const Conv2dGeom& g, const float* x, const float* w, const float* gy, float* gx, float* gw,
                            float* gb) {
  if (g.N == 0 || (!gw && !gx)) {
    // Degenerate cases (empty batch, bias gradient only) are plain sums: the im2col path does them.
    conv2d_backward<float>(g, gw ? x : nullptr, gx ? w : nullptr, gy, gx, gw, gb);
    return;
  }
  dnnl::stream s(cpu_engine());
  // gy in the layout the weight pass wants (it is reused by the data pass when the layouts agree).
  std::shared_ptr<const Prim> pw = gw ? get(g, Pass::kBwdWeights, gb != nullptr) : nullptr;
  std::shared_ptr<const Prim> pd = gx ? get(g, Pass::kBwdData, false) : nullptr;
  memory gyp(memory::desc(dims_dst(g), dt::f32, tag::nchw), cpu_engine(), const_cast<float*>(gy));
  memory gy_blocked;  // gy reordered once, shared by both passes when they want the same layout
  auto gy_for = [&](const Prim& p) {
    if (!p.dst_r) return gyp;
    if (gy_blocked && gy_blocked.get_desc() == p.dst) return gy_blocked;
    memory m(p.dst, cpu_engine(), arena().get(kDiffDst, p.dst.get_size()));
    p.dst_r->execute(s, gyp, m);
    gy_blocked = m;
    return m;
  };
  if (pw) {
    memory xp(pw->src_plain, cpu_engine(), const_cast<float*>(x)), gwp(pw->wei_plain, cpu_engine(), gw);
    memory xm = bind(pw->src, pw->src_r.has_value(), const_cast<float*>(x), kSrc);
    memory gwm = bind(pw->wei, pw->wei_r.has_value(), gw, kWei);
    memory sm(pw->scratch, cpu_engine(), arena().get(kScratch, scratch_bytes(*pw)));
    if (pw->src_r) pw->src_r->execute(s, xp, xm);
    memory gym = gy_for(*pw);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_DIFF_WEIGHTS, gwm}, {DNNL_ARG_SCRATCHPAD, sm}};
    if (gb) args.emplace(DNNL_ARG_DIFF_BIAS, memory(pw->bias_plain, cpu_engine(), gb));
    run(pw->prim, s, std::move(args));
    if (pw->wei_r) pw->wei_r->execute(s, gwm, gwp);
  } else if (gb) {
    conv2d_backward<float>(g, nullptr, nullptr, gy, nullptr, nullptr, gb);
  }
  if (pd) {
    memory wp(pd->wei_plain, cpu_engine(), const_cast<float*>(w)), gxp(pd->src_plain, cpu_engine(), gx);
    memory wm = bind(pd->wei, pd->wei_r.has_value(), const_cast<float*>(w), kWei);
    memory gxm = bind(pd->src, pd->src_r.has_value(), gx, kSrc);  // x's blocked copy is no longer needed
    memory sm(pd->scratch, cpu_engine(), arena().get(kScratch, scratch_bytes(*pd)));
    if (pd->wei_r) pd->wei_r->execute(s, wp, wm);
    memory gym = gy_for(*pd);
    run(pd->prim, s,
        {{DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, gxm}, {DNNL_ARG_SCRATCHPAD, sm}});
    if (pd->src_r) pd->src_r->execute(s, gxm, gxp);
  }
  s.wait();
}

size_t conv2d_forward_onednn_workspace_bytes(const Conv2dGeom& g) {
  auto p = get(g, Pass::kFwd, false);
  size_t n = p->scratch.get_size();
  if (p->src_r) n += p->src.get_size();
  if (p->wei_r) n += p->wei.get_size();
  if (p->dst_r) n += p->dst.get_size();
  return n;
}

size_t conv2d_backward_onednn_workspace_bytes(const Conv2dGeom& g, bool need_gx, bool need_gw) {
  std::array<size_t, kSlots> slot{};
  for (Pass pass : {Pass::kBwdWeights, Pass::kBwdData}) {
    if ((pass == Pass::kBwdWeights && !need_gw) || (pass == Pass::kBwdData && !need_gx)) continue;
    auto p = get(g, pass, false);
    slot[kScratch] = std::max(slot[kScratch], p->scratch.get_size());
    if (p->src_r) slot[kSrc] = std::max(slot[kSrc], p->src.get_size());
    if (p->wei_r) slot[kWei] = std::max(slot[kWei], p->wei.get_size());
    if (p->dst_r) slot[kDiffDst] = std::max(slot[kDiffDst], p->dst.get_size());
  }
  size_t n = 0;
  for (size_t v : slot) n += v;
  return n;
}

}  // namespace siam::kernels::cpu

#else  // !SIAM_WITH_ONEDNN

namespace siam::kernels::cpu {

bool conv2d_onednn_available() { return false; }
bool conv2d_onednn_preferred(const Conv2dGeom&) { return false; }
const char* conv2d_onednn_info() { return "oneDNN: not built (CMake SIAM_ONEDNN, Debian libdnnl-dev)"; }

void conv2d_forward_onednn(const Conv2dGeom&, const float*, const float*, const float*, float*) {
  SIAM_FAIL("conv2d: siam was built without oneDNN (CMake SIAM_ONEDNN=ON needs Debian libdnnl-dev)");
}
void conv2d_backward_onednn(const Conv2dGeom&, const float*, const float*, const float*, float*, float*, float*) {
  SIAM_FAIL("conv2d: siam was built without oneDNN (CMake SIAM_ONEDNN=ON needs Debian libdnnl-dev)");
}
size_t conv2d_forward_onednn_workspace_bytes(const Conv2dGeom&) { return 0; }
size_t conv2d_backward_onednn_workspace_bytes(const Conv2dGeom&, bool, bool) { return 0; }

}  // namespace siam::kernels::cpu

#endif

// conv2d through cuDNN 9's legacy convolution API (contract in kernels/cuda/cudnn_conv.h).
//
// Version 1: descriptors per call, one algorithm per (direction, type, TF32, geometry) from the cache.
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "kernels/cuda/cudnn_common.h"
#include "kernels/cuda/cudnn_conv.h"

namespace siam::kernels::cuda {

namespace {

enum class Dir : int { fwd = 0, bwd_data = 1, bwd_filter = 2 };
const char* dir_name(Dir d) { return d == Dir::fwd ? "forward" : d == Dir::bwd_data ? "backward-data" : "backward-filter"; }

// ..., and the least alignment of the call's three buffers (an algorithm found on 256-byte aligned buffers may
// not take a view at an element offset).
using ConvKey = std::tuple<int, int, int, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t>;
struct ConvPlan {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};
struct ConvCache {
  std::mutex mu;
  std::map<ConvKey, ConvPlan> plans;
  DenseCacheStats stats;
};
ConvCache& cache() {
  static ConvCache c;
  return c;
}

bool use_heuristics() {
  static const bool h = [] {
    const char* e = std::getenv("SIAM_CUDNN_HEURISTIC");
    return e != nullptr && e[0] != '\0' && e[0] != '0';
  }();
  return h;
}

// The descriptors of one call.
struct ConvDescs {
  TensorDesc x, y, b;
  FilterDesc w;
  ConvDesc conv;
  cudnnMathType_t requested_math = CUDNN_DEFAULT_MATH;
  bool exact_f32 = false;  // f32 without TF32: always CUDNN_FMA_MATH, whatever a search reports
};

void make_descs(ConvDescs& d, const Conv2dGeom& g, DenseType t, bool allow_tf32) {
  const cudnnDataType_t dt = cudnn_data_type(t);
  d.x.set_nchw(dt, g.N, g.C, g.H, g.W, "conv2d input");
  d.y.set_nchw(dt, g.N, g.K, g.OH, g.OW, "conv2d output");
  d.w.set(dt, g.K, g.C / g.groups, g.R, g.S);
  SIAM_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d.conv.d, checked_int(g.ph, "padding"), checked_int(g.pw, "padding"),
                                                   checked_int(g.sh, "stride"), checked_int(g.sw, "stride"),
                                                   checked_int(g.dh, "dilation"), checked_int(g.dw, "dilation"),
                                                   CUDNN_CROSS_CORRELATION, cudnn_compute_type(t)));
  SIAM_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d.conv.d, checked_int(g.groups, "groups")));
  d.exact_f32 = t == DenseType::f32 && !allow_tf32;
  d.requested_math = t == DenseType::bf16 ? CUDNN_TENSOR_OP_MATH : d.exact_f32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  SIAM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, d.requested_math));
}

size_t workspace_size(cudnnHandle_t h, const ConvDescs& d, Dir dir, int algo) {
  size_t bytes = 0;
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  switch (dir) {
    case Dir::fwd:
      st = cudnnGetConvolutionForwardWorkspaceSize(h, d.x.d, d.w.d, d.conv.d, d.y.d,
                                                   static_cast<cudnnConvolutionFwdAlgo_t>(algo), &bytes);
      break;
    case Dir::bwd_data:
      st = cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.d, d.y.d, d.conv.d, d.x.d,
                                                        static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &bytes);
      break;
    case Dir::bwd_filter:
      st = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.d, d.y.d, d.conv.d, d.w.d,
                                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &bytes);
      break;
  }
  return st == CUDNN_STATUS_SUCCESS ? bytes : 0;
}

int algo_count(Dir dir) {
  if (dir == Dir::fwd) return static_cast<int>(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  if (dir == Dir::bwd_data) return static_cast<int>(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  return static_cast<int>(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
}

// What a search or a heuristic reports, direction-independent.
struct Candidate {
  int algo;
  cudnnStatus_t status;
  size_t memory;
  cudnnMathType_t math;
};
template <class Perf> std::vector<Candidate> candidates(const Perf* perf, int n) {
  std::vector<Candidate> out;
  for (int i = 0; i < n; ++i)
    out.push_back({static_cast<int>(perf[i].algo), perf[i].status, perf[i].memory, perf[i].mathType});
  return out;
}

// Runs cudnnFind*Ex (x, w, y are the call's buffers; the output one is overwritten) or the v7 heuristic.
std::vector<Candidate> search(cudnnHandle_t h, const ConvDescs& d, Dir dir, const void* x, const void* w, const void* y,
                              const ScratchFn& scratch, size_t& ws_limit) {
  const int n = algo_count(dir);
  int returned = 0;
  if (use_heuristics()) {
    ws_limit = kConvMaxSearchWorkspace;
    switch (dir) {
      case Dir::fwd: {
        std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(n);
        SIAM_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.d, d.w.d, d.conv.d, d.y.d, n, &returned,
                                                                perf.data()));
        return candidates(perf.data(), returned);
      }
      case Dir::bwd_data: {
        std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(n);
        SIAM_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.d, d.y.d, d.conv.d, d.x.d, n, &returned,
                                                                     perf.data()));
        return candidates(perf.data(), returned);
      }
      case Dir::bwd_filter: {
        std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(n);
        SIAM_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.d, d.y.d, d.conv.d, d.w.d, n, &returned,
                                                                       perf.data()));
        return candidates(perf.data(), returned);
      }
    }
  }
  // Workspace for the search: the largest any algorithm asks for, capped; halved while it cannot be had.
  size_t want = 0;
  for (int a = 0; a < n; ++a) want = std::max(want, workspace_size(h, d, dir, a));
  want = std::min(want, kConvMaxSearchWorkspace);
  void* ws = nullptr;
  while (want > 0) {
    try {
      ws = scratch(want);
      break;
    } catch (const Error&) {
      cudaGetLastError();
      want /= 2;
    }
  }
  ws_limit = ws ? want : 0;
  switch (dir) {
    case Dir::fwd: {
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(n);
      SIAM_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x.d, x, d.w.d, w, d.conv.d, d.y.d,
                                                              const_cast<void*>(y), n, &returned, perf.data(), ws,
                                                              ws_limit));
      return candidates(perf.data(), returned);
    }
    case Dir::bwd_data: {
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(n);
      SIAM_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.d, w, d.y.d, y, d.conv.d, d.x.d,
                                                                   const_cast<void*>(x), n, &returned, perf.data(),
                                                                   ws, ws_limit));
      return candidates(perf.data(), returned);
    }
    case Dir::bwd_filter: {
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(n);
      SIAM_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.d, x, d.y.d, y, d.conv.d, d.w.d,
                                                                     const_cast<void*>(w), n, &returned, perf.data(),
                                                                     ws, ws_limit));
      return candidates(perf.data(), returned);
    }
  }
  return {};
}

// The plan for this call: from the cache, or searched now. For the search, x/w/y are the call's buffers
// (forward: x, w in, y out; backward-data: w, gy in, gx out passed as x; backward-filter: x, gy in, gw out).
ConvPlan plan_for(cudnnHandle_t h, ConvDescs& d, Dir dir, const Conv2dGeom& g, DenseType t, bool allow_tf32, int device,
                  const void* x, const void* w, const void* y, const ScratchFn& scratch) {
  const uint32_t align = std::min({pointer_alignment(x), pointer_alignment(w), pointer_alignment(y)});
  ConvKey key{device, static_cast<int>(dir), static_cast<int>(t), t == DenseType::f32 && allow_tf32, g.N, g.C, g.H, g.W,
              g.K, g.R, g.S, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups, align};
  ConvCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    ++c.stats.lookups;
    auto it = c.plans.find(key);
    if (it != c.plans.end()) return it->second;
  }
  size_t ws_limit = 0;
  const std::vector<Candidate> found = search(h, d, dir, x, w, y, scratch, ws_limit);
  ConvPlan plan;
  bool ok = false;
  for (const Candidate& cd : found) {
    if (cd.status != CUDNN_STATUS_SUCCESS || cd.memory > ws_limit) continue;
    if (d.exact_f32 && (cd.math == CUDNN_TENSOR_OP_MATH || cd.math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)) continue;
    plan.algo = cd.algo;
    plan.math = d.exact_f32 ? CUDNN_FMA_MATH : cd.math;
    plan.workspace = cd.memory;
    ok = true;
    break;
  }
  SIAM_CHECK(ok, "conv2d: cuDNN found no ", dir_name(dir), " algorithm for ", dense_type_name(t), " input (", g.N, ", ",
             g.C, ", ", g.H, ", ", g.W, "), weight (", g.K, ", ", g.C / g.groups, ", ", g.R, ", ", g.S, "), stride (",
             g.sh, ", ", g.sw, ") padding (", g.ph, ", ", g.pw, ") dilation (", g.dh, ", ", g.dw, ") groups ", g.groups,
             " within ", ws_limit, " bytes of workspace");
  // The workspace the algorithm needs with the math type it will run with.
  SIAM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, plan.math));
  plan.workspace = std::max(plan.workspace, workspace_size(h, d, dir, plan.algo));
  std::lock_guard<std::mutex> lock(c.mu);
  ++c.stats.misses;
  c.plans[key] = plan;
  c.stats.entries = static_cast<int64_t>(c.plans.size());
  return plan;
}

// alpha = 1, beta = 0 in the scaling type cuDNN expects for the data type (double for f64, else float).
struct Scale {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  const void* one(DenseType t) const { return t == DenseType::f64 ? static_cast<const void*>(&d1) : &f1; }
  const void* zero(DenseType t) const { return t == DenseType::f64 ? static_cast<const void*>(&d0) : &f0; }
};

}  // namespace

void conv2d_forward(const Conv2dGeom& g, DenseType t, bool allow_tf32, int device, const void* x, const void* w,
                    const void* b, void* y, const ScratchFn& scratch) {
  if (g.N == 0 || g.K == 0) return;
  cudnnHandle_t h = cudnn_handle(device);
  ConvDescs d;
  make_descs(d, g, t, allow_tf32);
  const ConvPlan plan = plan_for(h, d, Dir::fwd, g, t, allow_tf32, device, x, w, y, scratch);
  SIAM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, plan.math));
  void* ws = plan.workspace ? scratch(plan.workspace) : nullptr;
  Scale s;
  SIAM_CUDNN_CHECK(cudnnConvolutionForward(h, s.one(t), d.x.d, x, d.w.d, w, d.conv.d,
                                           static_cast<cudnnConvolutionFwdAlgo_t>(plan.algo), ws, plan.workspace,
                                           s.zero(t), d.y.d, y));
  if (b) {
    d.b.set_nchw(cudnn_data_type(t), 1, g.K, 1, 1, "conv2d bias");
    SIAM_CUDNN_CHECK(cudnnAddTensor(h, s.one(t), d.b.d, b, s.one(t), d.y.d, y));
  }
}

void conv2d_backward_data(const Conv2dGeom& g, DenseType t, bool allow_tf32, int device, const void* w, const void* gy,
                          void* gx, const ScratchFn& scratch) {
  if (g.N == 0 || g.C == 0) return;
  cudnnHandle_t h = cudnn_handle(device);
  ConvDescs d;
  make_descs(d, g, t, allow_tf32);
  const ConvPlan plan = plan_for(h, d, Dir::bwd_data, g, t, allow_tf32, device, gx, w, gy, scratch);
  SIAM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, plan.math));
  void* ws = plan.workspace ? scratch(plan.workspace) : nullptr;
  Scale s;
  SIAM_CUDNN_CHECK(cudnnConvolutionBackwardData(h, s.one(t), d.w.d, w, d.y.d, gy, d.conv.d,
                                                static_cast<cudnnConvolutionBwdDataAlgo_t>(plan.algo), ws,
                                                plan.workspace, s.zero(t), d.x.d, gx));
}

void conv2d_backward_filter(const Conv2dGeom& g, DenseType t, bool allow_tf32, int device, const void* x,
                            const void* gy, void* gw, const ScratchFn& scratch) {
  if (g.K == 0) return;
  cudnnHandle_t h = cudnn_handle(device);
  ConvDescs d;
  make_descs(d, g, t, allow_tf32);
  const ConvPlan plan = plan_for(h, d, Dir::bwd_filter, g, t, allow_tf32, device, x, gw, gy, scratch);
  SIAM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.d, plan.math));
  void* ws = plan.workspace ? scratch(plan.workspace) : nullptr;
  Scale s;
  SIAM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, s.one(t), d.x.d, x, d.y.d, gy, d.conv.d,
                                                  static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan.algo), ws,
                                                  plan.workspace, s.zero(t), d.w.d, gw));
}

void conv2d_backward_bias(const Conv2dGeom& g, DenseType t, int device, const void* gy, DenseType gb_type, void* gb) {
  if (g.K == 0) return;
  cudnnHandle_t h = cudnn_handle(device);
  TensorDesc dy, db;
  dy.set_nchw(cudnn_data_type(t), g.N, g.K, g.OH, g.OW, "conv2d output gradient");
  db.set_nchw(cudnn_data_type(gb_type), 1, g.K, 1, 1, "conv2d bias gradient");
  Scale s;
  SIAM_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, s.one(t), dy.d, gy, s.zero(t), db.d, gb));
}

DenseCacheStats conv_cache_stats() {
  ConvCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void conv_cache_clear() {
  ConvCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.plans.clear();
  c.stats = {};
}

}  // namespace siam::kernels::cuda

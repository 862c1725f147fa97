// Multi-tensor kernels on the CPU: one pass over a list of tensors (a model's parameters) instead of one op
// call per tensor (see /work/shared/KERNEL_NOTES.md, "Multi-tensor EMA").
//
// Plan. The tensors' elements are laid end to end (tensor 0, then tensor 1, ...; `total` elements in all) and
// cut into chunks of kMtChunkElems consecutive elements, so a chunk may straddle tensor boundaries and many
// small tensors (biases, BN parameters) share one chunk. Each chunk is a run of segments, a segment being a
// (tensor, offset, length) piece that lies in one tensor and one chunk. A kernel runs OpenMP over chunks
// (static schedule: chunks are equal in size) and, per segment, a contiguous `omp simd` loop on the pointers
// of that tensor. The plan depends only on the tensor lengths, not on the thread count; reductions (mt_lars_norms)
// keep one partial per segment and add them per tensor in segment order, so results do not depend on threads.
//
//   mt_ema:        target <- m * target + (1 - m) * online                       (12 bytes per f32 element)
//   mt_copy_bytes: dst <- src, byte plans (any dtype)                              (8 bytes per f32 element)
//   mt_sgd:        torch.optim.SGD's step with weight decay, momentum, dampening, nesterov (engine/optim/sgd.h)
//   mt_lars_norms: per tensor sum p^2 and sum (g + wd p)^2, accumulated in f64
//   mt_lars:       LARS's momentum step with a per-tensor scaled lr (engine/optim/lars.h)
// Pointers are per tensor (arrays of n_tensors pointers); every tensor is contiguous. T is float or double.
#pragma once
#include <cstdint>
#include <vector>

namespace siam::kernels::cpu {

constexpr int64_t kMtChunkElems = 64 * 1024;

struct MtSegment {
  int32_t tensor;  // index into the pointer arrays
  int64_t offset;  // first element within that tensor
  int64_t len;     // elements
};

struct MtPlan {
  std::vector<MtSegment> segments;   // in element order
  std::vector<int64_t> chunk_begin;  // chunk c = segments [chunk_begin[c], chunk_begin[c + 1]); size chunks + 1
  int64_t total = 0;                 // elements over all tensors
  int64_t num_chunks() const { return static_cast<int64_t>(chunk_begin.size()) - 1; }
};

// Plan for tensors of numel[0..n) elements (zero-length tensors get no segment), chunks of `chunk` elements.
MtPlan mt_plan(const int64_t* numel, int64_t n, int64_t chunk = kMtChunkElems);

// target[t] (numel) = m * target[t] + (1 - m) * online[t]; `one_minus_m` is passed in so that callers control
// its rounding (it is 1 - m computed in double, then converted to T).
template <class T>
void mt_ema(const MtPlan& plan, T* const* target, const T* const* online, T m, T one_minus_m);

// dst[t] = src[t], plan in bytes.
void mt_copy_bytes(const MtPlan& plan, void* const* dst, const void* const* src);

struct MtSgdArgs {
  double lr = 0, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false;
};
// One SGD step of every tensor (p, g, buf per tensor; buf may be null when momentum == 0):
//   d = g + wd * p;  buf = init[t] ? d : momentum * buf + (1 - dampening) * d;  d = nesterov ? d + momentum * buf : buf
//   p = p - lr * d
// init (n bytes, 1 = the tensor's first step: its buffer is written, not read) may be null when momentum == 0.
template <class T>
void mt_sgd(const MtPlan& plan, const MtSgdArgs& a, T* const* p, const T* const* g, T* const* buf,
            const uint8_t* init);

// p_sq[t] += sum p^2, d_sq[t] += sum (g + wd * p)^2 over tensor t (accumulated in f64; zero them first).
template <class T>
void mt_lars_norms(const MtPlan& plan, double weight_decay, const T* const* p, const T* const* g, double* p_sq,
                   double* d_sq);

struct MtLarsArgs {
  double momentum = 0;
  bool nesterov = false;
};
// One LARS step with per-tensor weight decay wd[t] and scaled lr slr[t] (n each):
//   d = g + wd * p
//   momentum == 0: p = p - slr * d
//   else:          v = momentum * v + slr * d;  p = nesterov ? p - momentum * v - slr * d : p - v
template <class T>
void mt_lars(const MtPlan& plan, const MtLarsArgs& a, const double* wd, const double* slr, T* const* p,
             const T* const* g, T* const* v);

}  // namespace siam::kernels::cpu

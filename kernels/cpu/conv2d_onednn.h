// 2-D convolution on the CPU through oneDNN (v2 of kernels/cpu/conv2d.h; same geometry, same semantics as
// conv2d_forward / conv2d_backward there), f32 only, NCHW in and out:
//   x  (N, C, H, W), w (K, C/groups, R, S), b (K) or null, y (N, K, OH, OW), all contiguous;
//   backward: gx = d/dx, gw = d/dw, gb = sum of gy over (N, OH, OW); any of gx/gw/gb may be null (skipped).
//
// oneDNN picks its own layouts (format_tag::any): on AVX-512 the direct JIT convolutions run on blocked
// tensors (nChw16c activations, OIhw16i16o-style weights). Plain NCHW/OIHW buffers are reordered into those
// layouts and results back, only where the chosen layout differs from the plain one; the blocked copies live
// in per-calling-thread buffers that grow and are reused (no page faults per call). A gy reordered once
// serves both the data and the weight gradient. Primitives are created once per (geometry, pass, bias,
// thread count) and kept in a small mutex-guarded cache; each call brings its own scratchpad (user mode), so
// the same primitive may run from several threads at once.
//
// Threads: Debian's libdnnl.so.2 uses the OpenMP runtime (libgomp) and runs on omp_get_max_threads() threads,
// the same pool as our OpenMP loops. Reproducibility: for a fixed thread count the results, the weight
// gradient included, are bitwise identical from run to run (tests/unit/conv_determinism_test.cpp).
// Only built when SIAM_WITH_ONEDNN is defined (CMake SIAM_ONEDNN); otherwise conv2d_onednn_available() is
// false and the other functions throw.
#pragma once
#include <cstddef>

#include "kernels/cpu/conv2d.h"

namespace siam::kernels::cpu {

// True when siam was built with oneDNN.
bool conv2d_onednn_available();
// "oneDNN 2.6.3 (cpu runtime OMP, isa avx512_core...)" or "oneDNN: not built".
const char* conv2d_onednn_info();

// Whether siam::conv2d runs this geometry through oneDNN (f32): built with it, and not one of the two cases
// where the im2col + OpenBLAS path measured faster (docs/PERF.md, 1 and 2 threads, AVX-512):
//   - 1x1 kernels with stride > 1 (ResNet downsamples): im2col is a strided copy and one GEMM; oneDNN's
//     1x1 kernel pays for reorders and a strided-source copy of its own (1.1-1.9x slower);
//   - single-channel input (C == 1, the grayscale stem): oneDNN writes a blocked output and reorders it back
//     to NCHW, twice the memory traffic of a memory-bound layer (1.4-2.6x slower forward).
bool conv2d_onednn_preferred(const Conv2dGeom& g);

void conv2d_forward_onednn(const Conv2dGeom& g, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_onednn(const Conv2dGeom& g, const float* x, const float* w, const float* gy, float* gx, float* gw,
                            float* gb);

// Bytes of blocked copies and scratchpad a call needs (what the per-thread buffers grow to), for benchmarks.
size_t conv2d_forward_onednn_workspace_bytes(const Conv2dGeom& g);
size_t conv2d_backward_onednn_workspace_bytes(const Conv2dGeom& g, bool need_gx, bool need_gw);

}  // namespace siam::kernels::cpu

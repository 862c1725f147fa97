// siam's CUDA emulator: runs the hand-written kernels of kernels/cuda/*.cu on the CPU, so that every machine
// (CI has no GPU) executes their index arithmetic, shared-memory use, barriers and warp shuffles against the
// CPU references. Not a performance tool and not a model of timing: a semantics checker.
//
// How: each .cu file is compiled as C++ (scripts/emu_rewrite.py turns `k<<<grid, block, smem, stream>>>(args)`
// into `::siam::emu::launcher(k, "k", grid, block, smem, stream)(args)` and `extern __shared__ T s[]` into a
// pointer to the launch's dynamic shared memory), with kernels/emu/include first on the include path: its
// cuda_runtime.h maps the CUDA keywords and builtins onto this file. A launch runs its blocks one after another
// on the calling OS thread; the threads of a block are fibers (ucontext) switched at __syncthreads, __syncwarp,
// the shuffles and mma.sync, so every barrier really waits for every live thread of its block or warp.
// `__shared__` becomes `static`: one copy, which is the block's shared memory because blocks never overlap
// (launches are serialized process-wide); it is filled with 0xff before each block, as dynamic shared memory is.
//
// What the emulator catches, as a failed launch (cudaGetLastError returns cudaErrorLaunchFailure and a line
// on stderr names the kernel, block and thread): a barrier that can never complete (deadlock), __trap(), an
// empty or oversized grid or block, dynamic shared memory over the limit its kernel was given with
// cudaFuncSetAttribute, and a pointer argument that is neither device memory (cudaMalloc) nor pinned host
// memory (cudaHostAlloc). kernels/emu/runtime_emu.cpp emulates the runtime (host memory behind cudaMalloc,
// synchronous streams, copies checked against their allocations). What it cannot catch: races between
// streams (everything is synchronous), out-of-bounds reads inside an allocation, timing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

namespace siam::emu {

// The running emulated thread (valid inside a kernel only).
struct ThreadState {
  uint3 tid;
  uint3 bid;
  dim3 block;
  dim3 grid;
  int lane;  // linear thread index % 32
  unsigned char* dyn_smem;
};
ThreadState& cur();

// ---- synchronization (kernels/emu/simt.cpp) ----
void sync_block();
void sync_warp();
// A warp collective: every live lane of the warp calls it with its input (bytes <= 48) and a lane argument;
// the last lane to arrive runs fn over all 32 slots (exited lanes have present false), which fills each slot's
// out; then every lane copies its out (bytes of it) back. One barrier per shuffle, ballot or mma.
struct WarpSlot {
  int arg = 0;
  int bytes = 0;
  bool present = false;
  alignas(16) unsigned char in[48] = {};
  alignas(16) unsigned char out[48] = {};
};
using WarpFn = void (*)(WarpSlot* slots);
void warp_collective(const void* in, int bytes, int arg, void* out, int out_bytes, WarpFn fn);
void shfl_fn(WarpSlot* slots);
[[noreturn]] void trap(const char* why);

template <class T> T shfl_from(T v, int src) {
  static_assert(sizeof(T) <= 48 && std::is_trivially_copyable_v<T>, "emu shuffle: 48 bytes at most");
  T r;
  warp_collective(&v, sizeof(T), src, &r, sizeof(T), shfl_fn);
  return r;
}
unsigned ballot(int pred);

// Thread and block order (default: the env SIAM_EMU_ORDER, "reverse" or not). Reversed, blocks and the threads
// of a block between barriers run last to first, which exposes reads of another thread's writes without a
// barrier between them, and dependences on block order, that the forward order hides.
void set_reverse_order(bool on);
bool reverse_order();

// The launch machinery behind the rewritten <<<>>> (kernels/emu/simt.cpp).
struct LaunchConfig {
  const void* kernel;
  const char* name;
  dim3 grid, block;
  size_t smem;
};
// Runs body once per thread of every block; records a launch failure (see above) instead of throwing.
void run_grid(const LaunchConfig& cfg, void (*body)(void*), void* ctx);
// The launches that passed the checks above and ran, per kernel name as written at the launch site
// ("mt_ema_kernel1<T>"), since the last reset_launch_counts(): for tests of how many launches an op makes.
std::map<std::string, int64_t> launch_counts();
void reset_launch_counts();
// Whether p lies in memory a kernel may use (device or pinned host), for the pointer-argument check.
bool kernel_accessible(const void* p);
void launch_failed(const LaunchConfig& cfg, const std::string& why);

template <class... P> struct Launcher {
  void (*kernel)(P...);
  LaunchConfig cfg;

  template <class... A> void operator()(A&&... args) {
    static_assert(sizeof...(A) == sizeof...(P), "emu launch: argument count differs from the kernel's");
    std::tuple<std::decay_t<P>...> params(static_cast<std::decay_t<P>>(std::forward<A>(args))...);
    if (!check_pointers(params, std::index_sequence_for<P...>{})) return;
    struct Ctx {
      void (*k)(P...);
      std::tuple<std::decay_t<P>...>* p;
    } ctx{kernel, &params};
    run_grid(
        cfg,
        [](void* c) {
          auto* x = static_cast<Ctx*>(c);
          std::apply(x->k, *x->p);  // copies: each thread owns its parameters
        },
        &ctx);
  }

 private:
  template <class Tuple, size_t... I> bool check_pointers(const Tuple& t, std::index_sequence<I...>) {
    bool ok = true;
    (check_one(std::get<I>(t), static_cast<int>(I), ok), ...);
    return ok;
  }
  template <class T> void check_one(const T& v, int index, bool& ok) {
    if constexpr (std::is_pointer_v<T>) {
      if (ok && v != nullptr && !kernel_accessible(static_cast<const void*>(v))) {
        ok = false;
        launch_failed(cfg, "argument " + std::to_string(index) +
                               " points to host memory that is neither cudaMalloc'ed nor pinned");
      }
    }
  }
};

template <class... P>
Launcher<P...> launcher(void (*kernel)(P...), const char* name, dim3 grid, dim3 block, size_t smem = 0,
                        cudaStream_t = nullptr) {
  return Launcher<P...>{kernel, LaunchConfig{reinterpret_cast<const void*>(kernel), name, grid, block, smem}};
}

// A static __shared__ variable (registered by the rewritten declaration, scripts/emu_rewrite.py) of the running
// kernel: filled with 0xff before every later block of that kernel (the first block of its first launch finds
// zeros), so that a read of shared memory the block has not written gives NaN (or -1), as the garbage of a GPU
// would give something wrong. Dynamic shared memory is filled the same way, before every block.
void shared_region(void* p, size_t bytes);

template <class T> T* dynamic_shared() { return reinterpret_cast<T*>(cur().dyn_smem); }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 for the calling lane, every lane of the warp taking part
// (fragment layouts of the PTX ISA; f32 accumulation of the exact bf16 products in k order).
void mma_m16n8k16_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);

}  // namespace siam::emu

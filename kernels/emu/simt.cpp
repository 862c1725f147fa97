// The emulator's thread scheduler: blocks one after another, the threads of a block as fibers (see simt.h).
#include "kernels/emu/simt.h"

#include <sys/mman.h>

// Fiber switches: a few instructions of assembly on x86-64 (callee-saved registers, the FP control words and the
// stack pointer), ucontext elsewhere and under AddressSanitizer (which knows swapcontext). swapcontext also saves
// the signal mask, a system call per switch: with the assembly, the emulated tensor-core test runs ~3x faster.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define SIAM_EMU_ASM_SWITCH 1
extern "C" void siam_emu_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl siam_emu_switch
.type siam_emu_switch,@function
siam_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size siam_emu_switch,.-siam_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");
#else
#include <ucontext.h>
#endif

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace siam::emu {

// kernels/emu/runtime_emu.cpp
int dynamic_smem_limit(const void* kernel);
void record_launch_error(const std::string& message);

namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr int kMaxBlockThreads = 1024;

struct Warp {
  int alive = 0, arrived = 0;
  uint64_t gen = 0;
  WarpFn fn = nullptr;  // the collective the arrived lanes wait in (null: __syncwarp)
  WarpSlot slots[32];
};

struct Fiber {
#if SIAM_EMU_ASM_SWITCH
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  ThreadState ts;
  int index = 0;
  bool done = false;
  bool waiting = false;
};

struct BlockRun {
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  int alive = 0, arrived = 0;
  uint64_t gen = 0, progress = 0;
  bool failed = false;
  std::string why;
};

thread_local BlockRun* t_run = nullptr;
thread_local Fiber* t_fiber = nullptr;
#if SIAM_EMU_ASM_SWITCH
thread_local void* t_sched_sp = nullptr;
#else
thread_local ucontext_t t_sched;
#endif

std::vector<void*>& stacks() {
  static std::vector<void*> s;  // guarded by the launch mutex; never unmapped
  return s;
}
void* stack(int i) {
  auto& s = stacks();
  while (static_cast<int>(s.size()) <= i) {
    void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "siam emu: cannot map a fiber stack\n");
      std::abort();
    }
    s.push_back(p);
  }
  return s[static_cast<size_t>(i)];
}

// SIAM_EMU_ORDER=reverse: blocks, and the threads of a block between barriers, run last to first. A kernel that
// reads what another thread wrote without a barrier between them, or that depends on the order of its blocks,
// usually gives other results then (the default order hides such races, as each thread runs to its next barrier
// before the next thread starts).
std::atomic<int>& order_setting() {
  static std::atomic<int> o{[] {
    const char* e = std::getenv("SIAM_EMU_ORDER");
    return e && std::string(e) == "reverse" ? 1 : 0;
  }()};
  return o;
}
bool reversed() { return order_setting().load() != 0; }

struct SharedRegion {
  void* p;
  size_t bytes;
};
// The static __shared__ variables each kernel has declared so far (they register as its threads run), guarded
// by the launch mutex; t_regions: the running launch's list, filled before each of its blocks.
std::unordered_map<const void*, std::vector<SharedRegion>>& kernel_regions() {
  static std::unordered_map<const void*, std::vector<SharedRegion>> m;
  return m;
}
thread_local std::vector<SharedRegion>* t_regions = nullptr;

std::map<std::string, int64_t>& launch_count_map() {  // guarded by launch_mutex()
  static auto* m = new std::map<std::string, int64_t>();
  return *m;
}

std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

#if SIAM_EMU_ASM_SWITCH
void yield() { siam_emu_switch(&t_fiber->sp, t_sched_sp); }
void resume(Fiber& f) { siam_emu_switch(&t_sched_sp, f.sp); }
#else
void yield() { swapcontext(&t_fiber->ctx, &t_sched); }
void resume(Fiber& f) { swapcontext(&t_sched, &f.ctx); }
#endif

// Every live lane of w has arrived: run its collective (if any), then let the lanes go.
void release_warp(BlockRun& r, Warp& w) {
  if (w.fn) {
    w.fn(w.slots);
    for (WarpSlot& s : w.slots) s.present = false;
    w.fn = nullptr;
  }
  ++w.gen;
  w.arrived = 0;
  ++r.progress;
}

void release_if_complete(BlockRun& r, Warp& w) {
  if (r.arrived > 0 && r.arrived >= r.alive) {
    ++r.gen;
    r.arrived = 0;
    ++r.progress;
  }
  if (w.arrived > 0 && w.arrived >= w.alive) release_warp(r, w);
}

void fiber_entry() {
  BlockRun& r = *t_run;
  Fiber& f = *t_fiber;
  r.body(r.ctx);
  f.done = true;
  ++r.progress;
  --r.alive;
  Warp& w = r.warps[static_cast<size_t>(f.index / 32)];
  --w.alive;
  release_if_complete(r, w);
#if SIAM_EMU_ASM_SWITCH
  yield();  // never resumed
  std::abort();
#endif
}  // (ucontext: returns to t_sched through uc_link)

std::string describe(const LaunchConfig& c) {
  return std::string(c.name) + " <<<(" + std::to_string(c.grid.x) + "," + std::to_string(c.grid.y) + "," +
         std::to_string(c.grid.z) + "), (" + std::to_string(c.block.x) + "," + std::to_string(c.block.y) + "," +
         std::to_string(c.block.z) + "), " + std::to_string(c.smem) + ">>>";
}

std::string where(const ThreadState& t) {
  return "block (" + std::to_string(t.bid.x) + "," + std::to_string(t.bid.y) + "," + std::to_string(t.bid.z) +
         ") thread (" + std::to_string(t.tid.x) + "," + std::to_string(t.tid.y) + "," + std::to_string(t.tid.z) + ")";
}

// Runs one block; false (with r.why) when it failed.
bool run_block(BlockRun& r, const LaunchConfig& cfg, uint3 bid, unsigned char* smem) {
  const int n = static_cast<int>(cfg.block.x * cfg.block.y * cfg.block.z);
  r.fibers.assign(static_cast<size_t>(n), Fiber{});
  r.warps.assign(static_cast<size_t>((n + 31) / 32), Warp{});
  r.alive = n;
  r.arrived = 0;
  r.failed = false;
  for (int i = 0; i < n; ++i) {
    Fiber& f = r.fibers[static_cast<size_t>(i)];
    f.index = i;
    const unsigned u = static_cast<unsigned>(i);
    f.ts.tid = {u % cfg.block.x, (u / cfg.block.x) % cfg.block.y, u / (cfg.block.x * cfg.block.y)};
    f.ts.bid = bid;
    f.ts.block = cfg.block;
    f.ts.grid = cfg.grid;
    f.ts.lane = i % 32;
    f.ts.dyn_smem = smem;
    ++r.warps[static_cast<size_t>(i / 32)].alive;
#if SIAM_EMU_ASM_SWITCH
    // The frame siam_emu_switch pops: FP control words, r15..r12, rbx, rbp, then fiber_entry as the return
    // address (and a null one above it, so that fiber_entry starts with the stack alignment of a call).
    auto* top = reinterpret_cast<uint64_t*>(static_cast<char*>(stack(i)) + kStackBytes);
    uint64_t* sp = top - 9;
    uint32_t ctl[2] = {0, 0};
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(ctl[0]), "=m"(ctl[1]));
    std::memcpy(&sp[0], ctl, sizeof ctl);
    for (int k = 1; k <= 6; ++k) sp[k] = 0;
    sp[7] = reinterpret_cast<uint64_t>(&fiber_entry);
    sp[8] = 0;
    f.sp = sp;
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stack(i);
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &t_sched;
    makecontext(&f.ctx, fiber_entry, 0);
#endif
  }
  // uninitialized shared memory reads as NaN
  if (smem && cfg.smem) std::memset(smem, 0xff, cfg.smem);
  if (t_regions)
    for (const SharedRegion& sr : *t_regions) std::memset(sr.p, 0xff, sr.bytes);
  while (r.alive > 0) {
    const uint64_t before = r.progress;
    for (size_t k = 0; k < r.fibers.size(); ++k) {
      Fiber& f = r.fibers[reversed() ? r.fibers.size() - 1 - k : k];
      if (f.done) continue;
      t_fiber = &f;
      resume(f);
      if (r.failed) {
        r.why += " in " + where(f.ts);
        return false;
      }
    }
    if (r.alive > 0 && r.progress == before) {
      int at_block = 0, at_warp = 0;
      const Fiber* first = nullptr;
      for (const Fiber& f : r.fibers)
        if (!f.done) {
          if (!first) first = &f;
          ++(f.waiting ? at_block : at_warp);
        }
      r.why = "deadlock: " + std::to_string(r.alive) + " live threads wait forever (" + std::to_string(at_block) +
              " at __syncthreads, " + std::to_string(at_warp) +
              " at a warp-level sync: __syncwarp, a shuffle or mma), first " + where(first->ts);
      return false;
    }
  }
  return true;
}

}  // namespace

void set_reverse_order(bool on) { order_setting().store(on ? 1 : 0); }
bool reverse_order() { return reversed(); }

void shared_region(void* p, size_t bytes) {
  if (!t_regions) return;
  for (const SharedRegion& r : *t_regions)
    if (r.p == p) return;
  t_regions->push_back({p, bytes});
}

ThreadState& cur() {
  if (!t_fiber) {
    std::fprintf(stderr, "siam emu: a CUDA builtin (threadIdx, blockIdx, ...) used outside a kernel\n");
    std::abort();
  }
  return t_fiber->ts;
}

void sync_block() {
  BlockRun& r = *t_run;
  ++r.arrived;
  ++r.progress;
  const uint64_t g = r.gen;
  if (r.arrived >= r.alive) {
    ++r.gen;
    r.arrived = 0;
    return;
  }
  t_fiber->waiting = true;
  while (r.gen == g) yield();
  t_fiber->waiting = false;
}

namespace {
void wait_warp(WarpFn fn) {
  BlockRun& r = *t_run;
  Warp& w = r.warps[static_cast<size_t>(t_fiber->index / 32)];
  if (w.arrived == 0) w.fn = fn;
  ++w.arrived;
  ++r.progress;
  const uint64_t g = w.gen;
  if (w.arrived >= w.alive) {
    release_warp(r, w);
    return;
  }
  while (w.gen == g) yield();
}
}  // namespace

void sync_warp() { wait_warp(nullptr); }

void warp_collective(const void* in, int bytes, int arg, void* out, int out_bytes, WarpFn fn) {
  Warp& w = t_run->warps[static_cast<size_t>(t_fiber->index / 32)];
  WarpSlot& mine = w.slots[t_fiber->ts.lane];
  std::memcpy(mine.in, in, static_cast<size_t>(bytes));
  mine.bytes = bytes;
  mine.arg = arg;
  mine.present = true;
  wait_warp(fn);
  std::memcpy(out, mine.out, static_cast<size_t>(out_bytes));
}

void shfl_fn(WarpSlot* slots) {
  for (int l = 0; l < 32; ++l) {
    WarpSlot& s = slots[l];
    if (!s.present) continue;
    const bool from_other = s.arg >= 0 && s.arg < 32 && slots[s.arg].present;
    std::memcpy(s.out, from_other ? slots[s.arg].in : s.in, static_cast<size_t>(s.bytes));
  }
}

unsigned ballot(int pred) {
  const int mine = pred != 0;
  unsigned r = 0;
  warp_collective(&mine, sizeof mine, 0, &r, sizeof r, [](WarpSlot* slots) {
    unsigned m = 0;
    for (int l = 0; l < 32; ++l) {
      int v = 0;
      if (slots[l].present) std::memcpy(&v, slots[l].in, sizeof v);
      m |= v ? (1u << l) : 0u;
    }
    for (int l = 0; l < 32; ++l) std::memcpy(slots[l].out, &m, sizeof m);
  });
  return r;
}

void trap(const char* why) {
  t_run->failed = true;
  t_run->why = why;
  for (;;) yield();  // never resumed: the scheduler abandons the launch
}

void launch_failed(const LaunchConfig& cfg, const std::string& why) {
  const std::string msg = "siam emu: kernel " + describe(cfg) + " failed: " + why;
  std::fprintf(stderr, "%s\n", msg.c_str());
  record_launch_error(msg);
}

std::map<std::string, int64_t> launch_counts() {
  std::lock_guard<std::mutex> lock(launch_mutex());
  return launch_count_map();
}

void reset_launch_counts() {
  std::lock_guard<std::mutex> lock(launch_mutex());
  launch_count_map().clear();
}

void run_grid(const LaunchConfig& cfg, void (*body)(void*), void* ctx) {
  const dim3 g = cfg.grid, b = cfg.block;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  if (g.x == 0 || g.y == 0 || g.z == 0 || threads == 0)
    return launch_failed(cfg, "an empty grid or block (cudaErrorInvalidConfiguration on a GPU)");
  if (threads > kMaxBlockThreads || b.z > 64)
    return launch_failed(cfg, "more than 1024 threads per block (or block.z > 64)");
  if (g.y > 65535 || g.z > 65535 || g.x > 0x7fffffffu) return launch_failed(cfg, "grid dimensions over the limit");
  const int limit = dynamic_smem_limit(cfg.kernel);
  if (cfg.smem > static_cast<size_t>(limit))
    return launch_failed(cfg, std::to_string(cfg.smem) +
                                  " bytes of dynamic shared memory, over the kernel's limit of " +
                                  std::to_string(limit) + " (raise it with cudaFuncSetAttribute)");
  static const bool trace = std::getenv("SIAM_EMU_TRACE") != nullptr;
  if (trace) std::fprintf(stderr, "siam emu: launch %s\n", describe(cfg).c_str());

  std::lock_guard<std::mutex> lock(launch_mutex());
  ++launch_count_map()[cfg.name];
  std::vector<unsigned char> smem_buf(cfg.smem + 16);
  unsigned char* smem =
      cfg.smem ? reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_buf.data()) + 15) & ~uintptr_t(15))
               : nullptr;
  BlockRun run;
  run.body = body;
  run.ctx = ctx;
  t_regions = &kernel_regions()[cfg.kernel];
  BlockRun* prev_run = t_run;
  Fiber* prev_fiber = t_fiber;
  t_run = &run;
  bool ok = true;
  const uint64_t blocks = uint64_t(g.x) * g.y * g.z;
  for (uint64_t k = 0; k < blocks && ok; ++k) {
    const uint64_t b = reversed() ? blocks - 1 - k : k;
    const auto x = static_cast<unsigned>(b % g.x), y = static_cast<unsigned>((b / g.x) % g.y),
               z = static_cast<unsigned>(b / (uint64_t(g.x) * g.y));
    ok = run_block(run, cfg, uint3{x, y, z}, smem);
  }
  t_run = prev_run;
  t_fiber = prev_fiber;
  t_regions = nullptr;
  if (!ok) launch_failed(cfg, run.why);
}

namespace {
// mma.sync m16n8k16 for the whole warp: slot in = a[4], b[2] (uint32) and c[4] (float); out = d[4].
void mma_fn(WarpSlot* slots) {
  auto half = [](uint32_t reg, int h) {
    const uint32_t bits = (h ? reg >> 16 : reg & 0xffffu) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  };
  float am[16][16], bm[16][8];
  for (int l = 0; l < 32; ++l) {
    uint32_t a[4], b[2];
    std::memcpy(a, slots[l].in, sizeof a);
    std::memcpy(b, slots[l].in + sizeof a, sizeof b);
    const int g = l >> 2, q = l & 3;
    for (int r = 0; r < 4; ++r)
      for (int h = 0; h < 2; ++h) am[g + 8 * (r & 1)][2 * q + h + 8 * (r >> 1)] = half(a[r], h);
    for (int r = 0; r < 2; ++r)
      for (int h = 0; h < 2; ++h) bm[2 * q + h + 8 * r][g] = half(b[r], h);
  }
  for (int l = 0; l < 32; ++l) {
    float c[4];
    std::memcpy(c, slots[l].in + 24, sizeof c);
    const int g = l >> 2, q = l & 3;
    for (int e = 0; e < 4; ++e) {
      const int row = g + 8 * (e >> 1), col = 2 * q + (e & 1);
      float acc = c[e];
      for (int k = 0; k < 16; ++k) acc += am[row][k] * bm[k][col];
      c[e] = acc;
    }
    std::memcpy(slots[l].out, c, sizeof c);
  }
}
}  // namespace

void mma_m16n8k16_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  unsigned char in[40];
  std::memcpy(in, a, 16);
  std::memcpy(in + 16, b, 8);
  std::memcpy(in + 24, c, 16);
  warp_collective(in, sizeof in, 0, c, sizeof c, mma_fn);
}

}  // namespace siam::emu

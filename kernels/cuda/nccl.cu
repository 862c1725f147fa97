// NCCL communicators with deadlines (see nccl.h). Every communicator is created nonblocking (config.blocking
// = 0): creation and enqueue calls may answer ncclInProgress, after which the communicator's state
// (ncclCommGetAsyncError) is polled until it leaves ncclInProgress, against the caller's deadline. Then the
// collective's completion event is polled, with the state, until the event fires, an asynchronous error
// appears, or the deadline passes (ncclCommAbort, siam::Error). Without NCCL (SIAM_WITH_NCCL unset) only
// nccl_built() is defined.
#include <cuda_runtime.h>

#include "kernels/cuda/check.h"
#include "kernels/cuda/nccl.h"

#if SIAM_WITH_NCCL
#include <nccl.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

#include "kernels/cuda/runtime.h"
#endif

namespace siam::cuda {

#if !SIAM_WITH_NCCL
bool nccl_built() { return false; }
#else
bool nccl_built() { return true; }

namespace {

using Clock = std::chrono::steady_clock;
std::atomic<bool> g_any_aborted{false};

static_assert(sizeof(ncclUniqueId) == kNcclUniqueIdBytes, "NcclUniqueId must hold an ncclUniqueId");

ncclComm_t as_comm(void* c) { return static_cast<ncclComm_t>(c); }
cudaStream_t as_stream(StreamHandle s) { return static_cast<cudaStream_t>(s); }

// A nonblocking communicator answers ncclInProgress while a call completes in the background: not an error
// (its state is polled next).
ncclResult_t started(ncclResult_t r) { return r == ncclInProgress ? ncclSuccess : r; }

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string bytes_str(size_t b) {
  char buf[64];
  if (b >= (size_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(b) / (1 << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KB", static_cast<double>(b) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%zu B", b);
  return buf;
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
  }
  SIAM_FAIL("NCCL: no NCCL type for dtype #", static_cast<int>(t));
}

ncclRedOp_t nccl_op(NcclReduce op) {
  switch (op) {
    case NcclReduce::sum: return ncclSum;
    case NcclReduce::avg: return ncclAvg;
    case NcclReduce::max: return ncclMax;
  }
  return ncclSum;
}

ncclConfig_t nonblocking_config() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

// A non-blocking stream of the current device at the highest priority (gradient all-reduces overlap backward).
StreamHandle make_priority_stream() {
  int lo = 0, hi = 0;
  SIAM_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
  return create_stream(/*non_blocking=*/true, hi);
}

}  // namespace

NcclUniqueId nccl_unique_id() {
  ncclUniqueId uid;
  SIAM_NCCL_CHECK(ncclGetUniqueId(&uid));
  NcclUniqueId id;
  std::memcpy(id.bytes, &uid, sizeof uid);
  return id;
}

int nccl_version() {
  int v = 0;
  SIAM_NCCL_CHECK(ncclGetVersion(&v));
  return v;
}

bool nccl_any_aborted() { return g_any_aborted.load(); }

NcclComm::NcclComm(const NcclUniqueId& id, int nranks, int rank, int device, StreamHandle stream, std::string name,
                   double timeout_s)
    : nranks_(nranks), rank_(rank), device_(device), stream_(stream), name_(std::move(name)) {
  SIAM_CHECK(nranks >= 1 && rank >= 0 && rank < nranks, "NCCL communicator '", name_, "': rank ", rank,
             " outside a world of ", nranks);
  const int ndev = device_count();
  SIAM_CHECK(device >= 0 && device < ndev, "NCCL communicator '", name_, "': rank ", rank,
             " wants device cuda:", device, " but ", ndev,
             " CUDA device(s) are visible (one process per GPU: device = local rank)");
  SIAM_CHECK(timeout_s > 0, "NCCL communicator '", name_, "': timeout must be positive seconds, got ", timeout_s);
  DeviceGuard g(device_);
  ncclUniqueId uid;
  std::memcpy(&uid, id.bytes, sizeof uid);
  ncclConfig_t config = nonblocking_config();
  ncclComm_t c = nullptr;
  const auto t0 = Clock::now();
  SIAM_NCCL_CHECK(started(ncclCommInitRankConfig(&c, nranks, uid, rank, &config)));
  comm_ = c;
  wait_state("ncclCommInitRankConfig", 0, t0, timeout_s);  // every rank joined (or abort + throw)
  if (!stream_) {
    stream_ = make_priority_stream();
    own_stream_ = true;
  }
}

NcclComm::NcclComm(void* comm, int nranks, int rank, int device, std::string name)
    : comm_(comm), nranks_(nranks), rank_(rank), device_(device), name_(std::move(name)) {}

std::unique_ptr<NcclComm> NcclComm::split(std::string name, double timeout_s) {
  check_usable("split");
  DeviceGuard g(device_);
  ncclConfig_t config = nonblocking_config();
  ncclComm_t child = nullptr;
  const auto t0 = Clock::now();
  SIAM_NCCL_CHECK(started(ncclCommSplit(as_comm(comm_), /*color=*/0, /*key=*/rank_, &child, &config)));
  wait_state("ncclCommSplit", 0, t0, timeout_s);  // the parent's side of the split
  SIAM_CHECK(child != nullptr, "ncclCommSplit of NCCL communicator '", name_, "' gave no communicator on rank ", rank_);
  std::unique_ptr<NcclComm> out(new NcclComm(child, nranks_, rank_, device_, std::move(name)));
  out->wait_state("ncclCommSplit", 0, t0, timeout_s);  // the child is ready
  out->stream_ = make_priority_stream();
  out->own_stream_ = true;
  return out;
}

NcclComm::~NcclComm() {
  // No throwing here, and nothing at all once the CUDA runtime is being torn down (a communicator destroyed by
  // a static destructor): the process is ending and the driver reclaims everything.
  int prev = 0;
  if (cudaGetDevice(&prev) != cudaSuccess) return;
  if (prev != device_) cudaSetDevice(device_);
  if (comm_) {
    ncclComm_t c = as_comm(comm_);
    comm_ = nullptr;
    // Finalize flushes outstanding work and waits until the peers are quiescent; a peer that is gone would
    // keep it in progress, so it gets at most 30 s before the communicator is aborted instead.
    ncclResult_t st = started(ncclCommFinalize(c));
    const auto t0 = Clock::now();
    while (st == ncclSuccess) {
      ncclResult_t state = ncclInProgress;
      st = ncclCommGetAsyncError(c, &state);
      if (st != ncclSuccess) break;
      if (state != ncclInProgress) {
        st = state;
        break;
      }
      if (seconds_since(t0) > 30.0) {
        st = ncclInProgress;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const ncclResult_t rc = st == ncclSuccess ? started(ncclCommDestroy(c)) : started(ncclCommAbort(c));
    if (st != ncclSuccess || rc != ncclSuccess)
      std::fprintf(stderr, "siam: NCCL communicator '%s' (rank %d) did not close cleanly: %s%s\n", name_.c_str(), rank_,
                   ncclGetErrorString(st != ncclSuccess ? st : rc),
                   st == ncclInProgress ? " (finalize still in progress after 30 s; aborted)" : "");
  }
  if (own_stream_ && stream_) cudaStreamDestroy(as_stream(stream_));
  if (prev != device_) cudaSetDevice(prev);
}

void NcclComm::check_usable(const char* op) const {
  SIAM_CHECK(!aborted_, op, " on NCCL communicator '", name_, "' (rank ", rank_, "): the communicator was aborted ",
             "earlier (", abort_reason_, ") and cannot run collectives; every rank must make a new one");
}

void NcclComm::abort_and_throw(const char* op, size_t bytes, const std::string& why) {
  std::string abort_note;
  if (comm_) {
    const ncclResult_t r = started(ncclCommAbort(as_comm(comm_)));  // its kernels exit; every rank must rebuild
    if (r != ncclSuccess)
      abort_note = siam::detail::str_cat(" (ncclCommAbort itself failed: ", ncclGetErrorString(r), ")");
    comm_ = nullptr;
  }
  aborted_ = true;
  g_any_aborted = true;
  abort_reason_ = siam::detail::str_cat(op, " #", seq_, ": ", why);
  SIAM_FAIL("siam::dist: ", op, " on NCCL communicator '", name_, "' (collective #", seq_, ", ", bytes_str(bytes),
            ", rank ", rank_, " of ", nranks_, ", cuda:", device_, ") ", why,
            "; the communicator was aborted (ncclCommAbort)", abort_note);
}

// Polls the communicator's state until it leaves ncclInProgress (creation, split, a nonblocking enqueue).
void NcclComm::wait_state(const char* op, size_t bytes, Clock::time_point t0, double timeout_s) {
  ncclComm_t c = as_comm(comm_);
  while (true) {
    ncclResult_t state = ncclInProgress;
    SIAM_NCCL_CHECK(ncclCommGetAsyncError(c, &state));
    if (state == ncclSuccess) return;
    if (state != ncclInProgress)
      abort_and_throw(op, bytes,
                      siam::detail::str_cat("failed: ", ncclGetErrorString(state), " (", ncclGetLastError(c), ")"));
    if (seconds_since(t0) > timeout_s)
      abort_and_throw(op, bytes,
                      siam::detail::str_cat("timed out after ", timeout_s, " s (SIAM_DIST_TIMEOUT_S) before ",
                                            "every rank had joined (a rank hung, died, or never called it)"));
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// The collective's frame: order after the caller's stream, enqueue, wait for completion against the deadline,
// order the caller's stream after it.
template <class Enqueue> void NcclComm::run(const char* op, size_t bytes, double timeout_s, Enqueue&& enqueue) {
  check_usable(op);
  DeviceGuard g(device_);
  ++seq_;
  const StreamHandle caller = current_stream(device_);
  ready_.record(caller);
  ready_.wait(stream_);
  const auto t0 = Clock::now();
  enqueue(as_comm(comm_), as_stream(stream_));
  wait_state(op, bytes, t0, timeout_s);
  done_.record(stream_);
  // Spin (yielding the core) while the data may still be moving: at least 20 ms, or bytes at 20 GB/s; then
  // 100 us sleeps, since by then the collective waits for a late rank.
  const double spin_s = std::max(0.02, static_cast<double>(bytes) / 20e9);
  ncclComm_t c = as_comm(comm_);
  while (!done_.query()) {
    ncclResult_t state = ncclSuccess;
    SIAM_NCCL_CHECK(ncclCommGetAsyncError(c, &state));
    if (state != ncclSuccess && state != ncclInProgress)
      abort_and_throw(op, bytes,
                      siam::detail::str_cat("failed: ", ncclGetErrorString(state), " (", ncclGetLastError(c), ")"));
    const double waited = seconds_since(t0);
    if (waited > timeout_s)
      abort_and_throw(op, bytes,
                      siam::detail::str_cat("timed out after ", timeout_s, " s (SIAM_DIST_TIMEOUT_S): ",
                                            "some rank has not reached it (hung, dead, or issuing a ",
                                            "different collective; NCCL cannot say which)"));
    if (waited < spin_s)
      sched_yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  done_.wait(caller);
}

void NcclComm::all_reduce(const void* send, void* recv, size_t count, DType dtype, NcclReduce op, double timeout_s) {
  run("all_reduce", count * dtype_size(dtype), timeout_s, [&](ncclComm_t c, cudaStream_t s) {
    SIAM_NCCL_CHECK(started(ncclAllReduce(send, recv, count, nccl_type(dtype), nccl_op(op), c, s)));
  });
}

void NcclComm::all_gather(const void* send, void* recv, size_t count, DType dtype, double timeout_s) {
  run("all_gather", count * nranks_ * dtype_size(dtype), timeout_s, [&](ncclComm_t c, cudaStream_t s) {
    SIAM_NCCL_CHECK(started(ncclAllGather(send, recv, count, nccl_type(dtype), c, s)));
  });
}

void NcclComm::reduce_scatter(const void* send, void* recv, size_t count, DType dtype, NcclReduce op,
                              double timeout_s) {
  run("reduce_scatter", count * nranks_ * dtype_size(dtype), timeout_s, [&](ncclComm_t c, cudaStream_t s) {
    SIAM_NCCL_CHECK(started(ncclReduceScatter(send, recv, count, nccl_type(dtype), nccl_op(op), c, s)));
  });
}

void NcclComm::broadcast(void* buf, size_t count, DType dtype, int root, double timeout_s) {
  SIAM_CHECK(root >= 0 && root < nranks_, "broadcast on NCCL communicator '", name_, "': root ", root,
             " outside a world of ", nranks_);
  run("broadcast", count * dtype_size(dtype), timeout_s, [&](ncclComm_t c, cudaStream_t s) {
    SIAM_NCCL_CHECK(started(ncclBroadcast(buf, buf, count, nccl_type(dtype), root, c, s)));
  });
}

#endif  // SIAM_WITH_NCCL

}  // namespace siam::cuda

// NCCL communicators of the CUDA backend: creation (from a unique id that rank 0 makes and some other channel
// hands to every rank, or by splitting an existing communicator), the collectives on device buffers, and the
// waits that give every call a deadline. Declared without CUDA or NCCL headers (engine/dist/nccl_communicator.cpp
// is plain C++); defined in kernels/cuda/nccl.cu, which is compiled into every CUDA build but has a body only
// when CMake found NCCL (SIAM_WITH_NCCL=1). Buffers are raw device pointers of one dtype:
//   all_reduce      send (count) -> recv (count)                       recv may be send (in place)
//   all_gather      send (count) -> recv (nranks * count), rank order
//   reduce_scatter  send (nranks * count) -> recv (count), block `rank`
//   broadcast       buf (count) on every rank becomes root's            in place
//
// Streams and order: a collective is enqueued on the communicator's stream (a non-blocking stream: the
// device's comm stream of kernels/cuda/stream.h, or one of its own, see NcclComm()); before it, that stream
// waits (an event) for the work enqueued so far on the calling thread's current stream of the device, so the
// collective sees every kernel that wrote its inputs; after it, the current stream waits for the collective.
// The call returns once the collective has completed (the completion event has fired): like the MPI backend,
// every collective is blocking for the host, which is what lets it have a deadline.
//
// Deadline: the call polls its completion event and ncclCommGetAsyncError. An asynchronous NCCL error, or the
// deadline (timeout_s) passing first, aborts the communicator (ncclCommAbort: its kernels exit) and throws a
// siam::Error naming the collective, the communicator, the rank and the size; every later call on it throws.
// Creation (ncclCommInitRankConfig, ncclCommSplit) is nonblocking NCCL polled against the same deadline, so a
// rank that never joins is an error, not a hang.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/core/dtype.h"
#include "kernels/cuda/stream.h"

namespace siam::cuda {

constexpr size_t kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
struct NcclUniqueId {
  unsigned char bytes[kNcclUniqueIdBytes] = {};
};

enum class NcclReduce { sum, avg, max };

// Whether this build has NCCL (CMake found nccl.h and libnccl).
bool nccl_built();
// ncclGetUniqueId: made by rank 0, handed to the others (engine/dist broadcasts it over MPI).
NcclUniqueId nccl_unique_id();
// The linked library's NCCL_VERSION_CODE (22809 for 2.28.9).
int nccl_version();
// True once any communicator of this process was aborted (a timeout or an asynchronous NCCL error).
bool nccl_any_aborted();

class NcclComm {
 public:
  // Joins the communicator of `nranks` processes sharing `id` as `rank`, with its buffers on `device`; a
  // collective call (every rank makes it). stream: the stream the collectives run on; nullptr gives the
  // communicator a non-blocking stream of its own at the highest priority (two communicators used from two
  // threads need two streams: on a shared one, their collectives would queue in a per-rank order, and two
  // ranks that queued them differently would wait for each other forever). `name` appears in messages.
  NcclComm(const NcclUniqueId& id, int nranks, int rank, int device, StreamHandle stream, std::string name,
           double timeout_s);
  ~NcclComm();  // ncclCommFinalize + ncclCommDestroy (ncclCommAbort after an abort or a stuck finalize)
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  // A new communicator over the same ranks (ncclCommSplit, one color) with a stream of its own; collective.
  std::unique_ptr<NcclComm> split(std::string name, double timeout_s);

  int rank() const { return rank_; }
  int nranks() const { return nranks_; }
  int device() const { return device_; }
  StreamHandle stream() const { return stream_; }
  const std::string& name() const { return name_; }
  bool aborted() const { return aborted_; }
  int64_t collectives() const { return seq_; }  // collectives issued so far

  // Collectives (see the table above). bf16/f16 move bitwise (NCCL's own types); their reductions run in
  // NCCL's arithmetic of that type. avg is ncclAvg (floating dtypes).
  void all_reduce(const void* send, void* recv, size_t count, DType dtype, NcclReduce op, double timeout_s);
  void all_gather(const void* send, void* recv, size_t count, DType dtype, double timeout_s);
  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, NcclReduce op, double timeout_s);
  void broadcast(void* buf, size_t count, DType dtype, int root, double timeout_s);

 private:
  NcclComm(void* comm, int nranks, int rank, int device, std::string name);  // from split()
  template <class Enqueue> void run(const char* op, size_t bytes, double timeout_s, Enqueue&& enqueue);
  void wait_state(const char* op, size_t bytes, std::chrono::steady_clock::time_point t0, double timeout_s);
  [[noreturn]] void abort_and_throw(const char* op, size_t bytes, const std::string& why);
  void check_usable(const char* op) const;

  void* comm_ = nullptr;  // ncclComm_t
  int nranks_ = 1, rank_ = 0, device_ = 0;
  StreamHandle stream_ = nullptr;
  bool own_stream_ = false;
  std::string name_;
  int64_t seq_ = 0;
  bool aborted_ = false;
  std::string abort_reason_;
  Event ready_, done_;  // the caller's stream -> the comm stream; the comm stream -> the caller's stream
};

}  // namespace siam::cuda

// siam::dist: data-parallel training. One process per rank; a Communicator per process runs the collectives
// (all_reduce, all_gather, reduce_scatter, broadcast, barrier) on tensors of any shape, and two autograd ops
// carry gradients across ranks (all_gather_rows, all_reduce_sum). DDP is in engine/dist/ddp.h, SyncBatchNorm
// in engine/nn/sync_batchnorm.h.
//
// Backends: "single" (world size 1, every collective the identity; what runs without a launcher) and "mpi"
// (Open MPI, CPU tensors; CUDA tensors are staged through the host until the NCCL backend exists). init()
// picks MPI when the process was launched by mpirun (OMPI_COMM_WORLD_SIZE is set) and siam was built with
// MPI (SIAM_WITH_MPI); otherwise the single backend.
//
//   siam::dist::init(&argc, &argv);
//   auto& comm = siam::dist::world();          // rank(), world_size(), all_reduce(t, ReduceOp::sum), ...
//   ...
//   siam::dist::finalize();
//
// Gradient convention (docs/DECISIONS.md, "Distributed gradients"): every rank's loss is its local mean (or,
// for a statistic, the same global value on every rank) and DDP averages the parameter gradients over the W
// ranks. Then the gradient of the global loss L = (1/W) sum_r L_r is reached exactly when the backward of
// every cross-rank op SUMS the incoming gradients over the ranks: all_gather_rows' backward reduce-scatters
// (sums) the gathered gradient, all_reduce_sum's backward all-reduces (sums) it. A consequence to keep in mind
// in tests: the gradient of an activation on a rank is W times the activation's gradient of L (it is the
// gradient of sum_r L_r); parameter gradients after DDP's average are those of L.
//
// Failure: every collective is nonblocking MPI polled against a deadline (SIAM_DIST_TIMEOUT_S seconds,
// default 300, or set_timeout_s()). When it passes, the waiting rank asks the others over a control channel
// where they are and throws a siam::Error naming the ranks that did not reach the collective (hung, or dead).
// A rank that dies outright is caught by mpirun, which then stops the others. finalize() after such a timeout
// calls MPI_Abort (an abandoned collective cannot be finished), so a program that catches the error, reports
// it and calls finalize() (or lets it escape main) stops every rank.
// The timeout must exceed the longest work one rank does while the others wait in a collective (rank 0
// writing a checkpoint, a slow first batch).
//
// Threads: collectives of one Communicator must be issued in the same order on every rank, so one thread uses
// a communicator at a time; duplicate() gives an independent one (DDP's communication thread uses its own).
#pragma once
#include <memory>
#include <string>

#include "engine/tensor.h"

namespace siam::dist {

enum class ReduceOp { sum, avg, max };
const char* reduce_op_name(ReduceOp op);

class Communicator {  // one per process (plus duplicates)
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;       // rank among the processes of this host
  virtual std::string backend() const = 0;  // "single", "mpi", "nccl", "nccl+mpi"

  // In place; t contiguous, same shape and dtype on every rank. avg needs a floating dtype; max is elementwise.
  virtual void all_reduce(Tensor& t, ReduceOp op) = 0;
  // t (n, ...) on every rank (same shape) -> (W n, ...): the ranks' tensors concatenated along dim 0, in rank order.
  virtual Tensor all_gather(const Tensor& t) = 0;
  // t (W n, ...) on every rank -> (n, ...): block r of the reduction of every rank's t goes to rank r.
  virtual Tensor reduce_scatter(const Tensor& t, ReduceOp op) = 0;
  // In place: every rank's t becomes root's (same shape and dtype everywhere; t contiguous).
  virtual void broadcast(Tensor& t, int root) = 0;
  virtual void barrier() = 0;

  // An independent communicator over the same ranks (its own ordering of collectives); a collective call on
  // every rank. `name` appears in error messages.
  virtual std::unique_ptr<Communicator> duplicate(const std::string& name) = 0;
  // Whether two threads may each drive their own communicator of this process at the same time (MPI:
  // MPI_THREAD_MULTIPLE was granted). DDP overlaps communication with backward only when true.
  virtual bool concurrent_ok() const { return true; }
  const std::string& name() const { return name_; }

  // Seconds a collective may wait for the other ranks before it throws (env SIAM_DIST_TIMEOUT_S, default 300).
  double timeout_s() const { return timeout_s_; }
  void set_timeout_s(double seconds);

 protected:
  Communicator(std::string name, double timeout_s) : name_(std::move(name)), timeout_s_(timeout_s) {}

 private:
  std::string name_;
  double timeout_s_;
};

// The timeout from SIAM_DIST_TIMEOUT_S (seconds > 0), or 300.
double default_timeout_s();

void init(int* argc, char*** argv);  // MPI when launched by mpirun (OMPI_COMM_WORLD_SIZE set) and built with MPI
Communicator& world();               // the single-process backend if init was never called
void finalize();                     // frees the communicators; MPI_Finalize (MPI_Abort after a timed-out collective)
bool is_main();                      // rank 0 of world(): the one that writes checkpoints, metrics and pictures
// Whether this build can run the MPI backend.
bool mpi_available();
// Reports `why` on stderr with the rank and stops every rank (MPI_Abort; exit(code) for the single backend).
[[noreturn]] void abort(const std::string& why, int code = 1);

// ---- collectives in autograd (on world() unless a communicator is given) ----
// x (n, ...) -> (W n, ...): forward all_gather along dim 0; backward: the incoming gradients summed over the
// ranks (a reduce-scatter), this rank's block of n rows. Every rank must pass the same shape.
Tensor all_gather_rows(const Tensor& x);
Tensor all_gather_rows(const Tensor& x, Communicator& comm);
// x (any shape) -> the sum over ranks (same shape); backward: the incoming gradients summed over the ranks.
Tensor all_reduce_sum(const Tensor& x);
Tensor all_reduce_sum(const Tensor& x, Communicator& comm);

}  // namespace siam::dist

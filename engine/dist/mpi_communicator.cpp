// The Open MPI backend of siam::dist::Communicator (CPU tensors; CUDA tensors are staged through the host).
//
// Every collective is the nonblocking MPI call (MPI_Iallreduce, MPI_Iallgather, MPI_Ireduce_scatter_block,
// MPI_Ibcast, MPI_Ibarrier) completed by polling MPI_Test against a deadline (timeout_s()):
//   - busy polling (with sched_yield, so other threads of an oversubscribed machine run) while the transfer
//     may still be moving data: the first max(50 ms, bytes / 0.5 GB/s); then 200 us sleeps between polls,
//     since by then the collective is waiting for a late rank;
//   - every 5 ms of waiting, the control channel is served (below);
//   - past the deadline the rank asks every other rank where it is and throws a siam::Error naming the ranks
//     that did not answer (hung in computation, or dead) or that have not reached this collective yet.
// Control channel: each communicator has a duplicate (ctl_) for queries {query id, collective #} and replies
// {query id, collectives entered, collectives completed}. Whichever thread of a process is waiting in any
// collective answers the queries for all of the process's communicators; a rank that computes (or hangs)
// outside every collective does not answer, which is what names it.
// Abandoned collectives: a request that timed out cannot be cancelled (MPI has no cancel for collectives);
// it is kept with its buffers and tested in later waits (a late rank may still complete it). finalize()
// gives them a second; if any is still pending it calls MPI_Abort instead of MPI_Finalize, which would hang.
#if SIAM_WITH_MPI
#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/dist/backends.h"
#include "engine/dist/mpi_check.h"

namespace siam::dist::detail {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kTagQuery = 7001, kTagReply = 7002;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string bytes_str(size_t b) {
  char buf[64];
  if (b >= (1u << 20))
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(b) / (1 << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KB", static_cast<double>(b) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%zu B", b);
  return buf;
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::max ? MPI_MAX : MPI_SUM; }

int mpi_count(int64_t n, const char* op) {
  SIAM_CHECK(n <= INT_MAX, op, ": ", n, " elements exceed MPI's int count (", INT_MAX, "); split the tensor");
  return static_cast<int>(n);
}

class MpiCommunicator;

// Process-wide state: the live communicators (whose control channels any waiting thread serves), pending
// control sends and abandoned collectives.
struct Registry {
  std::mutex mu;
  std::vector<MpiCommunicator*> comms;
  struct Send {
    MPI_Request req;
    std::unique_ptr<int64_t[]> buf;
  };
  std::vector<Send> sends;
  struct Abandoned {
    MPI_Request req;
    std::vector<Tensor> keep;  // buffers MPI may still write
    std::string what;
  };
  std::vector<Abandoned> abandoned;
  std::atomic<int64_t> next_query{1};
  bool threads_ok = false;
};
Registry& registry() {
  static Registry r;
  return r;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, const std::string& name, double timeout_s, int local_rank)
      : Communicator(name, timeout_s), comm_(comm), local_rank_(local_rank) {
    SIAM_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    SIAM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    SIAM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    SIAM_MPI_CHECK(MPI_Comm_dup(comm_, &ctl_));
    std::lock_guard<std::mutex> lk(registry().mu);
    registry().comms.push_back(this);
  }
  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lk(registry().mu);
      auto& v = registry().comms;
      v.erase(std::remove(v.begin(), v.end(), this), v.end());
    }
    if (mpi_running()) {
      MPI_Comm_free(&ctl_);
      MPI_Comm_free(&comm_);
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend() const override { return "mpi"; }
  bool concurrent_ok() const override { return registry().threads_ok; }

  void all_reduce(Tensor& t, ReduceOp op) override {
    const char* name = "all_reduce";
    check_in_place(name, t);
    check_reduce_dtype(name, t, op);
    if (t.is_cuda()) {
      Tensor h = t.to(kCPU);
      all_reduce(h, op);
      NoGradGuard ng;
      t.copy_(h);
      return;
    }
    const int64_t seq = ++entered_;
    MPI_Request req;
    SIAM_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), mpi_count(t.numel(), name), mpi_type(t.dtype(), name),
                                  mpi_op(op), comm_, &req));
    wait(req, name, seq, t.nbytes(), {t});
    if (op == ReduceOp::avg) {
      NoGradGuard ng;
      t.mul_(1.0 / size_);
    }
  }

  Tensor all_gather(const Tensor& t) override {
    const char* name = "all_gather";
    check_rows(name, t, 1);
    check_same_signature(name, t, /*split=*/false);
    Tensor src = t.detach().contiguous();
    if (src.is_cuda()) return all_gather(src.to(kCPU)).to(t.device());
    Shape out_shape = src.shape();
    out_shape[0] *= size_;
    Tensor out = empty(out_shape, src.dtype());
    const int64_t seq = ++entered_;
    MPI_Request req;
    const MPI_Datatype ty = mpi_type(src.dtype(), name);
    const int n = mpi_count(src.numel(), name);
    mpi_count(out.numel(), name);
    SIAM_MPI_CHECK(MPI_Iallgather(src.raw_data(), n, ty, out.raw_data(), n, ty, comm_, &req));
    wait(req, name, seq, out.nbytes(), {src, out});
    return out;
  }

  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    const char* name = "reduce_scatter";
    check_rows(name, t, size_);
    check_reduce_dtype(name, t, op);
    check_same_signature(name, t, /*split=*/true);
    Tensor src = t.detach().contiguous();
    if (src.is_cuda()) return reduce_scatter(src.to(kCPU), op).to(t.device());
    Shape out_shape = src.shape();
    out_shape[0] /= size_;
    Tensor out = empty(out_shape, src.dtype());
    const int64_t seq = ++entered_;
    MPI_Request req;
    mpi_count(src.numel(), name);
    SIAM_MPI_CHECK(MPI_Ireduce_scatter_block(src.raw_data(), out.raw_data(), mpi_count(out.numel(), name),
                                             mpi_type(src.dtype(), name), mpi_op(op), comm_, &req));
    wait(req, name, seq, src.nbytes(), {src, out});
    if (op == ReduceOp::avg) {
      NoGradGuard ng;
      out.mul_(1.0 / size_);
    }
    return out;
  }

  void broadcast(Tensor& t, int root) override {
    const char* name = "broadcast";
    check_in_place(name, t);
    SIAM_CHECK(root >= 0 && root < size_, name, ": root ", root, " outside world of size ", size_);
    check_same_signature(name, t, /*split=*/false);
    if (t.is_cuda()) {
      Tensor h = t.to(kCPU);
      broadcast(h, root);
      NoGradGuard ng;
      t.copy_(h);
      return;
    }
    const int64_t seq = ++entered_;
    MPI_Request req;
    SIAM_MPI_CHECK(MPI_Ibcast(t.raw_data(), mpi_count(t.numel(), name), mpi_type(t.dtype(), name), root, comm_, &req));
    wait(req, name, seq, t.nbytes(), {t});
  }

  void barrier() override {
    const int64_t seq = ++entered_;
    MPI_Request req;
    SIAM_MPI_CHECK(MPI_Ibarrier(comm_, &req));
    wait(req, "barrier", seq, 0, {});
  }

  std::unique_ptr<Communicator> duplicate(const std::string& name) override {
    MPI_Comm dup;
    SIAM_MPI_CHECK(MPI_Comm_dup(comm_, &dup));
    return std::make_unique<MpiCommunicator>(dup, name, timeout_s(), local_rank_);
  }

  // Answers pending queries and collects replies on the control channel (registry mutex held).
  void serve_locked() {
    int flag = 1;
    while (flag) {
      MPI_Status st;
      SIAM_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kTagQuery, ctl_, &flag, &st));
      if (!flag) break;
      int64_t q[2];
      SIAM_MPI_CHECK(MPI_Recv(q, 2, MPI_INT64_T, st.MPI_SOURCE, kTagQuery, ctl_, MPI_STATUS_IGNORE));
      Registry::Send s{MPI_REQUEST_NULL, std::make_unique<int64_t[]>(3)};
      s.buf[0] = q[0];
      s.buf[1] = entered_.load();
      s.buf[2] = completed_.load();
      SIAM_MPI_CHECK(MPI_Isend(s.buf.get(), 3, MPI_INT64_T, st.MPI_SOURCE, kTagReply, ctl_, &s.req));
      registry().sends.push_back(std::move(s));
    }
    flag = 1;
    while (flag) {
      MPI_Status st;
      SIAM_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kTagReply, ctl_, &flag, &st));
      if (!flag) break;
      int64_t r[3];
      SIAM_MPI_CHECK(MPI_Recv(r, 3, MPI_INT64_T, st.MPI_SOURCE, kTagReply, ctl_, MPI_STATUS_IGNORE));
      if (r[0] == active_query_) replies_.push_back({st.MPI_SOURCE, r[1], r[2]});  // else a stale reply: dropped
    }
  }

 private:
  struct Reply {
    int rank;
    int64_t entered, completed;
  };

  // Every rank passes the same dtype and shape (checked before the collectives that a mismatch would corrupt
  // silently): one small all-gather of (dtype, rank, shape).
  void check_same_signature(const char* op, const Tensor& t, bool split) {
    if (size_ == 1) return;
    constexpr int kLen = 2 + kMaxDims;
    std::vector<int64_t> sig(kLen, -1), all(static_cast<size_t>(kLen) * size_);
    sig[0] = static_cast<int64_t>(t.dtype());
    sig[1] = t.dim();
    for (int64_t d = 0; d < t.dim() && d < kMaxDims; ++d) sig[2 + d] = t.size(d);
    const int64_t seq = ++entered_;
    MPI_Request req;
    SIAM_MPI_CHECK(MPI_Iallgather(sig.data(), kLen, MPI_INT64_T, all.data(), kLen, MPI_INT64_T, comm_, &req));
    wait(req, op, seq, all.size() * sizeof(int64_t), {});
    for (int r = 0; r < size_; ++r) {
      const int64_t* o = all.data() + static_cast<size_t>(r) * kLen;
      if (std::equal(o, o + kLen, sig.data())) continue;
      Shape s(o + 2, o + 2 + std::clamp<int64_t>(o[1], 0, kMaxDims));
      SIAM_FAIL(op, " on communicator '", name(), "': rank ", rank_, " has ", dtype_name(t.dtype()), " ",
                shape_str(t.shape()), " but rank ", r, " has ", dtype_name(static_cast<DType>(o[0])), " ", shape_str(s),
                split ? " (every rank passes the same shape)" : " (every rank passes the same dtype and shape)");
    }
  }

  // Polls req until it completes; past the deadline, names the missing ranks and throws.
  void wait(MPI_Request& req, const char* op, int64_t seq, size_t bytes, std::vector<Tensor> keep) {
    const auto t0 = Clock::now();
    const double spin_s = std::max(0.05, static_cast<double>(bytes) / 0.5e9);
    auto last_serve = t0;
    while (true) {
      int done = 0;
      SIAM_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
      if (done) break;
      const auto now = Clock::now();
      const double waited = std::chrono::duration<double>(now - t0).count();
      if (now - last_serve > std::chrono::milliseconds(5)) {
        serve_all();
        last_serve = now;
      }
      if (waited > timeout_s()) {
        if (diagnose_and_throw(req, op, seq, bytes, std::move(keep))) break;  // completed during the diagnosis
      }
      if (waited < spin_s)
        sched_yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ++completed_;
  }

  static void serve_all() {
    Registry& reg = registry();
    std::unique_lock<std::mutex> lk(reg.mu, std::try_to_lock);
    if (!lk.owns_lock()) return;  // another thread is serving
    for (MpiCommunicator* c : reg.comms) c->serve_locked();
    auto done = [](MPI_Request& r) {
      int flag = 0;
      MPI_Test(&r, &flag, MPI_STATUS_IGNORE);
      return flag != 0;
    };
    std::erase_if(reg.sends, [&](Registry::Send& s) { return done(s.req); });
    std::erase_if(reg.abandoned, [&](Registry::Abandoned& a) { return done(a.req); });
  }

  // Returns true when req completed after all; otherwise throws.
  bool diagnose_and_throw(MPI_Request& req, const char* op, int64_t seq, size_t bytes, std::vector<Tensor> keep) {
    Registry& reg = registry();
    const double timeout = timeout_s();
    const int64_t qid = (static_cast<int64_t>(rank_) << 40) + reg.next_query++;
    {
      std::lock_guard<std::mutex> lk(reg.mu);
      active_query_ = qid;
      replies_.clear();
      for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        Registry::Send s{MPI_REQUEST_NULL, std::make_unique<int64_t[]>(2)};
        s.buf[0] = qid;
        s.buf[1] = seq;
        SIAM_MPI_CHECK(MPI_Isend(s.buf.get(), 2, MPI_INT64_T, r, kTagQuery, ctl_, &s.req));
        reg.sends.push_back(std::move(s));
      }
    }
    const double grace = std::clamp(timeout / 4, 0.25, 2.0);
    const auto t0 = Clock::now();
    std::vector<Reply> replies;
    while (seconds_since(t0) < grace) {
      int done = 0;
      SIAM_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
      if (done) {
        std::lock_guard<std::mutex> lk(reg.mu);
        active_query_ = 0;
        return true;
      }
      {
        std::lock_guard<std::mutex> lk(reg.mu);
        for (MpiCommunicator* c : reg.comms) c->serve_locked();
        replies = replies_;
      }
      if (static_cast<int>(replies.size()) == size_ - 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::string silent, behind, waiting = std::to_string(rank_);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      auto it = std::find_if(replies.begin(), replies.end(), [&](const Reply& x) { return x.rank == r; });
      if (it == replies.end()) {
        silent += (silent.empty() ? "" : ", ") + std::to_string(r);
      } else if (it->entered < seq) {
        behind += siam::detail::str_cat(behind.empty() ? "" : ", ", r, " (at collective #", it->entered, ")");
      } else {
        waiting += ", " + std::to_string(r);
      }
    }
    {
      std::lock_guard<std::mutex> lk(reg.mu);
      active_query_ = 0;
      reg.abandoned.push_back({req, std::move(keep), siam::detail::str_cat(op, " #", seq, " on '", name(), "'")});
    }
    std::string who;
    if (!silent.empty()) who += "rank(s) " + silent + " did not answer (hung outside any collective, or dead)";
    if (!behind.empty()) who += (who.empty() ? "" : "; ") + std::string("rank(s) ") + behind + " have not reached it";
    if (who.empty()) who = "every rank answered and reached it (do the ranks call different collectives?)";
    SIAM_FAIL("siam::dist: ", op, " on communicator '", name(), "' (collective #", seq, ", ", bytes_str(bytes),
              ") timed out on rank ", rank_, " after ", timeout, " s (SIAM_DIST_TIMEOUT_S): ", who,
              "; waiting in it: rank(s) ", waiting);
  }

  MPI_Comm comm_ = MPI_COMM_NULL, ctl_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::atomic<int64_t> entered_{0}, completed_{0};
  int64_t active_query_ = 0;    // guarded by the registry mutex
  std::vector<Reply> replies_;  // guarded by the registry mutex
};

}  // namespace

bool mpi_running() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

std::unique_ptr<Communicator> mpi_init_world(int* argc, char*** argv) {
  int init = 0, provided = MPI_THREAD_SINGLE;
  MPI_Initialized(&init);
  if (!init) {
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    SIAM_CHECK(rc == MPI_SUCCESS, "siam::dist::init: MPI_Init_thread failed: ", mpi_error_string(rc));
  } else {
    MPI_Query_thread(&provided);
  }
  registry().threads_ok = provided == MPI_THREAD_MULTIPLE;
  SIAM_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MPI_Comm shared, world;
  SIAM_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &shared));
  int local_rank = 0;
  SIAM_MPI_CHECK(MPI_Comm_rank(shared, &local_rank));
  SIAM_MPI_CHECK(MPI_Comm_free(&shared));
  SIAM_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &world));
  return std::make_unique<MpiCommunicator>(world, "world", default_timeout_s(), local_rank);
}

void mpi_finalize() {
  if (!mpi_running()) return;
  Registry& reg = registry();
  const auto t0 = Clock::now();
  size_t pending = 0;
  std::string what;
  do {
    std::lock_guard<std::mutex> lk(reg.mu);
    for (MpiCommunicator* c : reg.comms) c->serve_locked();
    std::erase_if(reg.abandoned, [](Registry::Abandoned& a) {
      int flag = 0;
      MPI_Test(&a.req, &flag, MPI_STATUS_IGNORE);
      return flag != 0;
    });
    pending = reg.abandoned.size();
    if (pending) what = reg.abandoned.front().what;
    if (pending) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  } while (pending && seconds_since(t0) < 1.0);
  if (pending) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::fprintf(stderr,
                 "siam: rank %d: %zu collective(s) abandoned after a timeout never completed (first: %s); "
                 "MPI_Abort stops every rank\n",
                 rank, pending, what.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  for (auto& s : reg.sends) MPI_Cancel(&s.req), MPI_Request_free(&s.req);
  reg.sends.clear();
  MPI_Finalize();
}

void mpi_abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace siam::dist::detail
#endif

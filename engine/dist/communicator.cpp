// The process-wide world communicator, init/finalize, and the single-process backend (world size 1).
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "engine/dist/backends.h"
#include "engine/dist/nccl_communicator.h"  // empty without SIAM_WITH_NCCL

namespace siam::dist {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::max: return "max";
  }
  return "?";
}

void Communicator::set_timeout_s(double seconds) {
  SIAM_CHECK(seconds > 0, "Communicator '", name_, "': timeout must be positive seconds, got ", seconds);
  timeout_s_ = seconds;
}

double default_timeout_s() {
  const char* env = std::getenv("SIAM_DIST_TIMEOUT_S");
  if (env == nullptr || *env == '\0') return 300.0;
  char* end = nullptr;
  double v = std::strtod(env, &end);
  SIAM_CHECK(end != env && *end == '\0' && v > 0, "SIAM_DIST_TIMEOUT_S must be a positive number of seconds, got '",
             env, "'");
  return v;
}

namespace detail {

void check_in_place(const char* op, const Tensor& t) {
  SIAM_CHECK(t.defined(), op, ": the tensor is undefined");
  SIAM_CHECK(t.is_contiguous(), op, ": the tensor must be contiguous (it is reduced in place), got shape ",
             shape_str(t.shape()), " strides ", shape_str(t.strides()));
}

void check_reduce_dtype(const char* op, const Tensor& t, ReduceOp r) {
  SIAM_CHECK(t.dtype() != DType::bf16 && t.dtype() != DType::f16, op, ": no ", reduce_op_name(r), " reduction for ",
             dtype_name(t.dtype()), " (a storage type): reduce an f32 copy, shape ", shape_str(t.shape()));
  SIAM_CHECK(r != ReduceOp::avg || is_floating(t.dtype()), op, ": avg needs a floating tensor, got ",
             dtype_name(t.dtype()), " of shape ", shape_str(t.shape()));
}

void check_rows(const char* op, const Tensor& t, int world_size) {
  SIAM_CHECK(t.defined(), op, ": the tensor is undefined");
  SIAM_CHECK(t.dim() >= 1, op, ": needs a tensor with a dim 0 to split over the ranks, got a scalar");
  SIAM_CHECK(t.size(0) % world_size == 0, op, ": dim 0 of ", shape_str(t.shape()), " does not split into ", world_size,
             " equal blocks (one per rank)");
}

namespace {

class SingleCommunicator final : public Communicator {
 public:
  SingleCommunicator(const std::string& name, double timeout_s) : Communicator(name, timeout_s) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string backend() const override { return "single"; }

  void all_reduce(Tensor& t, ReduceOp op) override {
    check_in_place("all_reduce", t);
    check_reduce_dtype("all_reduce", t, op);
  }
  Tensor all_gather(const Tensor& t) override {
    check_rows("all_gather", t, 1);
    NoGradGuard ng;
    return t.detach().clone();
  }
  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    check_rows("reduce_scatter", t, 1);
    check_reduce_dtype("reduce_scatter", t, op);
    NoGradGuard ng;
    return t.detach().clone();
  }
  void broadcast(Tensor& t, int root) override {
    check_in_place("broadcast", t);
    SIAM_CHECK(root == 0, "broadcast: root ", root, " outside world of size 1");
  }
  void barrier() override {}
  std::unique_ptr<Communicator> duplicate(const std::string& name) override { return make_single(name, timeout_s()); }
};

}  // namespace

std::unique_ptr<Communicator> make_single(const std::string& name, double timeout_s) {
  return std::make_unique<SingleCommunicator>(name, timeout_s);
}

}  // namespace detail

namespace {
std::mutex g_mu;
std::unique_ptr<Communicator> g_world;  // set by init()

Communicator& single_world() {
  static std::unique_ptr<Communicator> s = detail::make_single("world", default_timeout_s());
  return *s;
}
}  // namespace

bool mpi_available() {
#if SIAM_WITH_MPI
  return true;
#else
  return false;
#endif
}

void init(int* argc, char*** argv) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_world) return;
#if SIAM_WITH_MPI
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
    g_world = detail::mpi_init_world(argc, argv);
#if SIAM_WITH_NCCL
    g_world = detail::nccl_route_world(std::move(g_world));  // CUDA tensors -> NCCL when every rank has a GPU
#endif
    return;
  }
#else
  (void)argc;
  (void)argv;
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr)
    std::fprintf(stderr,
                 "siam: launched by mpirun but built without MPI (SIAM_MPI=OFF or libopenmpi-dev missing): "
                 "every process runs alone as rank 0 of 1\n");
#endif
  g_world = detail::make_single("world", default_timeout_s());
}

Communicator& world() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_world ? *g_world : single_world();
}

void finalize() {
  std::lock_guard<std::mutex> lk(g_mu);
  if (!g_world) return;
  const bool mpi = g_world->backend() == "mpi" || g_world->backend() == "nccl+mpi";
  g_world.reset();
#if SIAM_WITH_MPI
#if SIAM_WITH_NCCL
  if (mpi && detail::nccl_aborted() && detail::mpi_running()) {  // the other ranks may still wait in NCCL
    std::fprintf(stderr, "siam: an NCCL collective was aborted (timeout or NCCL error); MPI_Abort stops every rank\n");
    std::fflush(stderr);
    detail::mpi_abort(1);
  }
#endif
  if (mpi) detail::mpi_finalize();
#else
  (void)mpi;
#endif
}

bool is_main() { return world().rank() == 0; }

void abort(const std::string& why, int code) {
  int rank = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (g_world) rank = g_world->rank();
  }
  std::fprintf(stderr, "siam: rank %d stops every rank: %s\n", rank, why.c_str());
  std::fflush(stderr);
#if SIAM_WITH_MPI
  if (detail::mpi_running()) detail::mpi_abort(code);
#endif
  std::exit(code);
}

}  // namespace siam::dist

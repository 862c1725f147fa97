// The NCCL backend of siam::dist::Communicator (CUDA tensors; the NCCL calls live in kernels/cuda/nccl.cu) and
// the routed world (CUDA tensors -> NCCL, CPU tensors -> MPI); see nccl_communicator.h.
#if SIAM_WITH_NCCL
#include "engine/dist/nccl_communicator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/dist/backends.h"

namespace siam::dist {
namespace {

cuda::NcclReduce nccl_reduce(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return cuda::NcclReduce::sum;
    case ReduceOp::avg: return cuda::NcclReduce::avg;
    case ReduceOp::max: return cuda::NcclReduce::max;
  }
  return cuda::NcclReduce::sum;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<cuda::NcclComm> comm, int local_rank, const std::string& name, double timeout_s)
      : Communicator(name, timeout_s), comm_(std::move(comm)), local_rank_(local_rank) {}

  int rank() const override { return comm_->rank(); }
  int world_size() const override { return comm_->nranks(); }
  int local_rank() const override { return local_rank_; }
  std::string backend() const override { return "nccl"; }
  bool concurrent_ok() const override { return true; }  // each communicator has its own NCCL comm and stream

  void all_reduce(Tensor& t, ReduceOp op) override {
    const char* name = "all_reduce";
    detail::check_in_place(name, t);
    detail::check_reduce_dtype(name, t, op);
    check_device(name, t);
    if (t.numel() == 0) return;  // same shape everywhere: every rank skips
    comm_->all_reduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), t.dtype(), nccl_reduce(op),
                      timeout_s());
  }

  Tensor all_gather(const Tensor& t) override {
    const char* name = "all_gather";
    detail::check_rows(name, t, 1);
    check_device(name, t);
    check_same_signature(name, t, /*split=*/false);
    Tensor src = t.detach().contiguous();  // (n, ...)
    Shape out_shape = src.shape();
    out_shape[0] *= world_size();
    Tensor out = empty(out_shape, TensorOptions(src.dtype(), src.device()));  // (W n, ...)
    if (src.numel() > 0)
      comm_->all_gather(src.raw_data(), out.raw_data(), static_cast<size_t>(src.numel()), src.dtype(), timeout_s());
    return out;
  }

  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    const char* name = "reduce_scatter";
    detail::check_rows(name, t, world_size());
    detail::check_reduce_dtype(name, t, op);
    check_device(name, t);
    check_same_signature(name, t, /*split=*/true);
    Tensor src = t.detach().contiguous();  // (W n, ...)
    Shape out_shape = src.shape();
    out_shape[0] /= world_size();
    Tensor out = empty(out_shape, TensorOptions(src.dtype(), src.device()));  // (n, ...)
    if (out.numel() > 0)
      comm_->reduce_scatter(src.raw_data(), out.raw_data(), static_cast<size_t>(out.numel()), src.dtype(),
                            nccl_reduce(op), timeout_s());
    return out;
  }

  void broadcast(Tensor& t, int root) override {
    const char* name = "broadcast";
    detail::check_in_place(name, t);
    SIAM_CHECK(root >= 0 && root < world_size(), name, ": root ", root, " outside world of size ", world_size());
    check_device(name, t);
    check_same_signature(name, t, /*split=*/false);
    if (t.numel() > 0) comm_->broadcast(t.raw_data(), static_cast<size_t>(t.numel()), t.dtype(), root, timeout_s());
  }

  // NCCL has no barrier: an all-reduce of one element, which every rank leaves only once all have entered it.
  void barrier() override {
    if (!one_.defined()) one_ = zeros({1}, TensorOptions(DType::f32, Device(DeviceType::cuda, comm_->device())));
    comm_->all_reduce(one_.raw_data(), one_.raw_data(), 1, DType::f32, cuda::NcclReduce::max, timeout_s());
  }

  std::unique_ptr<Communicator> duplicate(const std::string& name) override {
    return std::make_unique<NcclCommunicator>(comm_->split(name, timeout_s()), local_rank_, name, timeout_s());
  }

 private:
  void check_device(const char* op, const Tensor& t) const {
    SIAM_CHECK(t.is_cuda() && t.device().index == comm_->device(), op, " on NCCL communicator '", name(), "': rank ",
               rank(), " runs NCCL on cuda:", comm_->device(), " but the tensor ", shape_str(t.shape()), " is on ",
               t.device().str(), " (one process per GPU: put the rank's tensors on cuda:<local rank>)");
  }

  // Every rank passes the same dtype and shape (a mismatch would mix unrelated rows silently): one small
  // all-gather of (dtype, rank, shape) on the device, as the MPI backend does.
  void check_same_signature(const char* op, const Tensor& t, bool split) {
    const int W = world_size();
    if (W == 1) return;
    constexpr int kLen = 2 + kMaxDims;
    std::vector<int64_t> sig(kLen, -1);
    sig[0] = static_cast<int64_t>(t.dtype());
    sig[1] = t.dim();
    for (int64_t d = 0; d < t.dim() && d < kMaxDims; ++d) sig[static_cast<size_t>(2 + d)] = t.size(d);
    Tensor mine = from_vector_i64(sig, {kLen}).to(t.device());                                    // (kLen)
    Tensor all = empty({static_cast<int64_t>(W) * kLen}, TensorOptions(DType::i64, t.device()));  // (W kLen)
    comm_->all_gather(mine.raw_data(), all.raw_data(), kLen, DType::i64, timeout_s());
    const std::vector<int64_t> host = all.to(kCPU).to_vector<int64_t>();
    for (int r = 0; r < W; ++r) {
      const int64_t* o = host.data() + static_cast<size_t>(r) * kLen;
      if (std::equal(o, o + kLen, sig.data())) continue;
      Shape s(o + 2, o + 2 + std::clamp<int64_t>(o[1], 0, kMaxDims));
      SIAM_FAIL(op, " on communicator '", name(), "': rank ", rank(), " has ", dtype_name(t.dtype()), " ",
                shape_str(t.shape()), " but rank ", r, " has ", dtype_name(static_cast<DType>(o[0])), " ", shape_str(s),
                split ? " (every rank passes the same shape)" : " (every rank passes the same dtype and shape)");
    }
  }

  std::unique_ptr<cuda::NcclComm> comm_;
  int local_rank_ = 0;
  Tensor one_;  // (1) f32 on the device: the barrier's operand
};

#if SIAM_WITH_MPI
// CUDA tensors to NCCL, CPU tensors (and barrier) to MPI. Rank, size and local rank are MPI's (the same as
// NCCL's). The parts take this communicator's timeout before each call (set_timeout_s is not virtual).
class RoutedCommunicator final : public Communicator {
 public:
  RoutedCommunicator(std::unique_ptr<Communicator> mpi, std::unique_ptr<Communicator> nccl, const std::string& name,
                     double timeout_s)
      : Communicator(name, timeout_s), mpi_(std::move(mpi)), nccl_(std::move(nccl)) {}

  int rank() const override { return mpi_->rank(); }
  int world_size() const override { return mpi_->world_size(); }
  int local_rank() const override { return mpi_->local_rank(); }
  std::string backend() const override { return "nccl+mpi"; }
  bool concurrent_ok() const override { return mpi_->concurrent_ok(); }

  void all_reduce(Tensor& t, ReduceOp op) override { part(t).all_reduce(t, op); }
  Tensor all_gather(const Tensor& t) override { return part(t).all_gather(t); }
  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override { return part(t).reduce_scatter(t, op); }
  void broadcast(Tensor& t, int root) override { part(t).broadcast(t, root); }
  void barrier() override { part(Tensor()).barrier(); }

  std::unique_ptr<Communicator> duplicate(const std::string& name) override {
    auto mpi = mpi_->duplicate(name);
    auto nccl = nccl_->duplicate(name);
    return std::make_unique<RoutedCommunicator>(std::move(mpi), std::move(nccl), name, timeout_s());
  }

 private:
  Communicator& part(const Tensor& t) {
    Communicator& c = t.defined() && t.is_cuda() ? *nccl_ : *mpi_;
    if (c.timeout_s() != timeout_s()) c.set_timeout_s(timeout_s());
    return c;
  }

  std::unique_ptr<Communicator> mpi_, nccl_;
};

int env_local_rank(int fallback) {
  const char* env = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  return end != env && *end == '\0' && v >= 0 ? static_cast<int>(v) : fallback;
}
#endif

}  // namespace

std::unique_ptr<Communicator> make_nccl(int nranks, int rank, int local_rank, int device, const cuda::NcclUniqueId& id,
                                        const std::string& name, double timeout_s) {
  auto comm = std::make_unique<cuda::NcclComm>(id, nranks, rank, device, cuda::comm_stream(device), name, timeout_s);
  return std::make_unique<NcclCommunicator>(std::move(comm), local_rank, name, timeout_s);
}

namespace detail {

bool nccl_aborted() { return cuda::nccl_any_aborted(); }

#if SIAM_WITH_MPI
std::unique_ptr<Communicator> nccl_route_world(std::unique_ptr<Communicator> mpi) {
  const int W = mpi->world_size(), rank = mpi->rank();
  const int local = env_local_rank(mpi->local_rank());
  const char* env = std::getenv("SIAM_DIST_NCCL");
  const bool disabled = env != nullptr && std::string(env) == "0";
  const int ndev = cuda_device_count();
  const bool can = !disabled && local < ndev;
  // Every rank must agree (creating the NCCL communicator is collective): gather (can, devices) over MPI.
  Tensor mine = from_vector_i64({can ? 1 : 0, ndev}, {1, 2});
  const std::vector<int64_t> all = mpi->all_gather(mine).to_vector<int64_t>();  // (W, 2)
  std::string without;
  int64_t devices_seen = 0;
  for (int r = 0; r < W; ++r) {
    devices_seen += all[static_cast<size_t>(2 * r + 1)];
    if (all[static_cast<size_t>(2 * r)] == 0) without += (without.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!without.empty()) {
    if (rank == 0 && devices_seen > 0 && !disabled)
      std::fprintf(stderr,
                   "siam: NCCL is off: rank(s) %s have no CUDA device at their local rank (one process per GPU); "
                   "CUDA tensors go through host memory over MPI\n",
                   without.c_str());
    return mpi;
  }
  cuda::set_device(local);
  // Rank 0's unique id, to every rank over MPI (as a (128) u8 CPU tensor).
  cuda::NcclUniqueId id;
  if (rank == 0) id = cuda::nccl_unique_id();
  Tensor idt = empty({static_cast<int64_t>(cuda::kNcclUniqueIdBytes)}, TensorOptions(DType::u8));
  std::memcpy(idt.raw_data(), id.bytes, cuda::kNcclUniqueIdBytes);
  mpi->broadcast(idt, 0);
  std::memcpy(id.bytes, idt.raw_data(), cuda::kNcclUniqueIdBytes);
  const double timeout = mpi->timeout_s();
  auto nccl = make_nccl(W, rank, local, local, id, mpi->name() + ".nccl", timeout);
  const std::string name = mpi->name();
  return std::make_unique<RoutedCommunicator>(std::move(mpi), std::move(nccl), name, timeout);
}
#endif

}  // namespace detail
}  // namespace siam::dist
#endif  // SIAM_WITH_NCCL

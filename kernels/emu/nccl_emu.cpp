// The emulator's NCCL (kernels/cuda/nccl.h) over MPI: the emulated device memory is host memory, so every NCCL
// collective is the MPI collective on the same buffers, on a communicator of its own (MPI_Comm_dup of the world;
// split() duplicates again), so that the engine's routed world, DDP's communication thread and the NCCL
// communicator code above this interface run as on GPUs. Processes are the MPI world's: a communicator of
// nranks processes must be made by all of them, with rank = the MPI rank. bf16 and f16 are reduced in f32 and
// rounded back (NCCL reduces in their own arithmetic: results may differ in the last bit). No deadline: MPI
// blocks (the MPI backend's timeouts still guard the world's own collectives). See kernels/emu/simt.h.
#if SIAM_WITH_NCCL && SIAM_WITH_MPI
#include <mpi.h>

#include <cstring>
#include <random>
#include <vector>

#include "engine/core/error.h"
#include "engine/dist/mpi_check.h"
#include "kernels/common/half.h"
#include "kernels/cuda/nccl.h"

namespace siam::cuda {

namespace {

MPI_Comm& mpi(void* c) { return *static_cast<MPI_Comm*>(c); }

bool half_type(DType t) { return t == DType::bf16 || t == DType::f16; }

MPI_Op mpi_op(NcclReduce op) { return op == NcclReduce::max ? MPI_MAX : MPI_SUM; }

// The values of a half-precision buffer as floats, and back.
std::vector<float> widen(const void* p, size_t n, DType t) {
  std::vector<float> out(n);
  const auto* h = static_cast<const uint16_t*>(p);
  for (size_t i = 0; i < n; ++i) out[i] = t == DType::bf16 ? bf16_bits_to_f32(h[i]) : f16_bits_to_f32(h[i]);
  return out;
}
void narrow(const std::vector<float>& v, void* p, DType t) {
  auto* h = static_cast<uint16_t*>(p);
  for (size_t i = 0; i < v.size(); ++i) h[i] = t == DType::bf16 ? f32_to_bf16_bits(v[i]) : f32_to_f16_bits(v[i]);
}

// In place over count elements of dtype t (send already copied into buf).
void reduce_in_place(MPI_Comm c, void* buf, size_t count, DType t, NcclReduce op, int nranks) {
  SIAM_CHECK(op != NcclReduce::avg || t == DType::f32 || t == DType::f64 || half_type(t),
             "emulated NCCL: avg needs a floating dtype");
  const int n = static_cast<int>(count);
  if (half_type(t)) {
    std::vector<float> v = widen(buf, count, t);
    SIAM_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v.data(), n, MPI_FLOAT, mpi_op(op), c));
    if (op == NcclReduce::avg)
      for (float& x : v) x /= static_cast<float>(nranks);
    narrow(v, buf, t);
    return;
  }
  SIAM_MPI_CHECK(
      MPI_Allreduce(MPI_IN_PLACE, buf, n, dist::detail::mpi_type(t, "emulated NCCL all_reduce"), mpi_op(op), c));
  if (op == NcclReduce::avg) {
    if (t == DType::f32)
      for (size_t i = 0; i < count; ++i) static_cast<float*>(buf)[i] /= static_cast<float>(nranks);
    else
      for (size_t i = 0; i < count; ++i) static_cast<double*>(buf)[i] /= static_cast<double>(nranks);
  }
}

}  // namespace

bool nccl_built() { return true; }
NcclUniqueId nccl_unique_id() {
  NcclUniqueId id;
  std::random_device rd;
  for (auto& b : id.bytes) b = static_cast<unsigned char>(rd());
  return id;
}
int nccl_version() { return 0; }  // not a real NCCL
bool nccl_any_aborted() { return false; }

NcclComm::NcclComm(const NcclUniqueId&, int nranks, int rank, int device, StreamHandle stream, std::string name, double)
    : nranks_(nranks), rank_(rank), device_(device), stream_(stream), name_(std::move(name)) {
  int initialized = 0;
  SIAM_MPI_CHECK(MPI_Initialized(&initialized));
  SIAM_CHECK(initialized, "emulated NCCL '", name_, "': needs MPI (run under mpirun, after siam::dist::init)");
  int size = 0, me = 0;
  SIAM_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  SIAM_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &me));
  SIAM_CHECK(size == nranks && me == rank, "emulated NCCL '", name_, "': rank ", rank, " of ", nranks,
             " must be MPI rank ", me, " of ", size, " (the emulator's NCCL spans the MPI world)");
  auto* c = new MPI_Comm;
  SIAM_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, c));
  comm_ = c;
}

NcclComm::NcclComm(void* comm, int nranks, int rank, int device, std::string name)
    : comm_(comm), nranks_(nranks), rank_(rank), device_(device), name_(std::move(name)) {}

NcclComm::~NcclComm() {
  if (comm_) {
    MPI_Comm_free(&mpi(comm_));
    delete static_cast<MPI_Comm*>(comm_);
  }
}

std::unique_ptr<NcclComm> NcclComm::split(std::string name, double) {
  auto* c = new MPI_Comm;
  SIAM_MPI_CHECK(MPI_Comm_dup(mpi(comm_), c));
  return std::unique_ptr<NcclComm>(new NcclComm(c, nranks_, rank_, device_, std::move(name)));
}

void NcclComm::all_reduce(const void* send, void* recv, size_t count, DType dtype, NcclReduce op, double) {
  ++seq_;
  if (send != recv) std::memmove(recv, send, count * dtype_size(dtype));
  reduce_in_place(mpi(comm_), recv, count, dtype, op, nranks_);
}

void NcclComm::all_gather(const void* send, void* recv, size_t count, DType dtype, double) {
  ++seq_;
  const size_t bytes = count * dtype_size(dtype);
  std::vector<unsigned char> mine(static_cast<const unsigned char*>(send),
                                  static_cast<const unsigned char*>(send) + bytes);
  SIAM_MPI_CHECK(MPI_Allgather(mine.data(), static_cast<int>(bytes), MPI_BYTE, recv, static_cast<int>(bytes), MPI_BYTE,
                               mpi(comm_)));
}

void NcclComm::reduce_scatter(const void* send, void* recv, size_t count, DType dtype, NcclReduce op, double) {
  ++seq_;
  const size_t es = dtype_size(dtype), total = count * static_cast<size_t>(nranks_);
  std::vector<unsigned char> all(static_cast<const unsigned char*>(send),
                                 static_cast<const unsigned char*>(send) + total * es);
  reduce_in_place(mpi(comm_), all.data(), total, dtype, op, nranks_);  // every block everywhere, then ours
  std::memcpy(recv, all.data() + static_cast<size_t>(rank_) * count * es, count * es);
}

void NcclComm::broadcast(void* buf, size_t count, DType dtype, int root, double) {
  ++seq_;
  SIAM_MPI_CHECK(MPI_Bcast(buf, static_cast<int>(count * dtype_size(dtype)), MPI_BYTE, root, mpi(comm_)));
}

}  // namespace siam::cuda
#endif

// The NCCL backend of siam::dist::Communicator (CUDA tensors, one process per GPU) and the world that routes
// CUDA tensors to NCCL and CPU tensors to MPI. Only in builds with SIAM_WITH_NCCL (a CUDA build in which CMake
// found nccl.h and libnccl); the routed world also needs SIAM_WITH_MPI, whose MPI_Bcast hands rank 0's
// ncclUniqueId to the others.
//
// init() under mpirun (engine/dist/communicator.cpp): after the MPI world is up, every rank checks that a CUDA
// device exists at its local rank (OMPI_COMM_WORLD_LOCAL_RANK, else MPI's shared-memory rank) and that
// SIAM_DIST_NCCL is not 0; when all can, the device is made current (cuda:<local rank>), rank 0's unique id is
// broadcast over MPI, the NCCL communicator is created (on the device's comm stream, kernels/cuda/stream.h)
// and world() becomes the routed communicator (backend() "nccl+mpi"). Otherwise world() stays "mpi" (CUDA
// tensors staged through host memory) and rank 0 says why on stderr.
//
// Collectives of the NCCL backend take CUDA tensors on the communicator's device (any other device is a
// siam::Error); the argument checks, shapes and results are those of every backend (engine/dist/dist.h).
// all_gather, reduce_scatter and broadcast first all-gather a (dtype, shape) signature, as the MPI backend
// does; barrier is an all-reduce of one element. Each collective is blocking for the host and has a deadline
// (timeout_s()); on expiry, or on an asynchronous NCCL error, the NCCL communicator is aborted and the
// siam::Error names the collective (kernels/cuda/nccl.h). finalize() after such an abort calls MPI_Abort.
// duplicate() splits the NCCL communicator (ncclCommSplit) onto a stream of its own, so DDP's communication
// thread and the main thread never queue their collectives behind each other.
#pragma once
#if SIAM_WITH_NCCL
#include <memory>
#include <string>

#include "engine/dist/dist.h"
#include "kernels/cuda/nccl.h"

namespace siam::dist {

// A communicator of `nranks` processes over CUDA tensors on `device`, joined with the unique id that rank 0
// made (cuda::nccl_unique_id()) and every rank received; a collective call. With nranks = 1 it needs no other
// process: make_nccl(1, 0, 0, device, cuda::nccl_unique_id(), ...).
std::unique_ptr<Communicator> make_nccl(int nranks, int rank, int local_rank, int device, const cuda::NcclUniqueId& id,
                                        const std::string& name, double timeout_s);

namespace detail {
#if SIAM_WITH_MPI
// Given the MPI world, the routed world (CUDA tensors -> NCCL, CPU tensors -> MPI) when every rank can run
// NCCL, else the MPI world itself; a collective call.
std::unique_ptr<Communicator> nccl_route_world(std::unique_ptr<Communicator> mpi);
#endif
// Whether an NCCL communicator of this process was aborted (timeout or asynchronous error).
bool nccl_aborted();
}  // namespace detail

}  // namespace siam::dist
#endif

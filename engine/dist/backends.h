// Internal to engine/dist: the backends behind siam::dist::Communicator and the checks they share.
#pragma once
#include <memory>
#include <string>

#include "engine/dist/dist.h"

namespace siam::dist::detail {

// World size 1: every collective is the identity (a copy where a new tensor is returned).
std::unique_ptr<Communicator> make_single(const std::string& name, double timeout_s);

// Argument checks shared by the backends; `op` names the collective in messages.
void check_in_place(const char* op, const Tensor& t);                  // defined, contiguous
void check_reduce_dtype(const char* op, const Tensor& t, ReduceOp r);  // avg: floating; bf16/f16: none
void check_rows(const char* op, const Tensor& t, int world_size);      // dim >= 1, dim 0 divisible by W

#if SIAM_WITH_MPI
// MPI_Init_thread (MPI_THREAD_MULTIPLE asked) and the world communicator.
std::unique_ptr<Communicator> mpi_init_world(int* argc, char*** argv);
// Waits briefly for collectives abandoned after a timeout; MPI_Finalize when none is left, else MPI_Abort.
void mpi_finalize();
bool mpi_running();  // initialized and not finalized
[[noreturn]] void mpi_abort(int code);
#endif

}  // namespace siam::dist::detail

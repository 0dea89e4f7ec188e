// MPI's world as a harvit::Comm (OpenMPI or any MPI-3 library). Built only when CMake finds MPI
// (HARVIT_WITH_MPI); the CLI calls mpi_world() first thing.
#pragma once
#include <memory>

#include "core/comm.h"

namespace harvit {

// True when this process was started by mpirun/mpiexec (or a PMI launcher such as srun).
bool launched_by_mpi();
// When launched_by_mpi(): initialises MPI (thread level FUNNELED: only the main thread calls it)
// and returns MPI_COMM_WORLD, finalised when the returned object is destroyed; else
// Comm::local(). Call once, before anything else reads argv.
Comm& mpi_world(int* argc, char*** argv);

}  // namespace harvit

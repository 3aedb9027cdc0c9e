#pragma once
// Thread setup for the libtorch engine.
#include <memory>

namespace thinkeys {

class WorkPool;

// libtorch's OpenMP pool and OpenBLAS's own pthreads both want every core; the
// OpenMP workers spin after each parallel region and starve the BLAS threads
// (GPT-2-small decode measured 4x slower). So element-wise ops run on one
// thread and the GEMMs/GEMVs, which dominate, get `threads` BLAS threads.
void configure_threads(int threads);

// The thread count configure_threads settled on (1 if it was never called),
// for the project's own parallel kernels.
int compute_threads();

// The pool of compute_threads() threads that the project's own parallel
// kernels share (projections, decode attention): one set of workers then
// stays awake across a decode step instead of each pool's sleeping between
// its runs. Re-made when the configured count changes; holders of the old
// one keep it alive.
std::shared_ptr<WorkPool> compute_pool();

}  // namespace thinkeys

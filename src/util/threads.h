#pragma once
// How many threads the project's own parallel kernels use, and the pool they
// share. Torch-free: the libtorch/BLAS side is set by configure_threads
// (model/engine_threads.h), which also sets this count.
#include <memory>

namespace thinkeys {

class WorkPool;

// Sets the count compute_threads() returns; 0 or less means every core.
// Returns the count it settled on.
int set_compute_threads(int threads);

// The thread count last set (1 if it was never set), for the project's own
// parallel kernels.
int compute_threads();

// The pool of compute_threads() threads that the project's own parallel
// kernels share (projections, decode attention): one set of workers then
// stays awake across a decode step instead of each pool's sleeping between
// its runs. Re-made when the configured count changes; holders of the old
// one keep it alive.
std::shared_ptr<WorkPool> compute_pool();

}  // namespace thinkeys

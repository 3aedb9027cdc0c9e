#pragma once
// Thread setup for the libtorch engine.
namespace thinkeys {

// libtorch's OpenMP pool and OpenBLAS's own pthreads both want every core; the
// OpenMP workers spin after each parallel region and starve the BLAS threads
// (GPT-2-small decode measured 4x slower). So element-wise ops run on one
// thread and the GEMMs/GEMVs, which dominate, get `threads` BLAS threads.
void configure_threads(int threads);

// The thread count configure_threads settled on (1 if it was never called),
// for the project's own parallel kernels.
int compute_threads();

}  // namespace thinkeys

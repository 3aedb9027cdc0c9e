#pragma once
// Thread setup for the libtorch engine.
#include "util/threads.h"

namespace thinkeys {

// libtorch's OpenMP pool and OpenBLAS's own pthreads both want every core; the
// OpenMP workers spin after each parallel region and starve the BLAS threads
// (GPT-2-small decode measured 4x slower). So element-wise ops run on one
// thread and the GEMMs/GEMVs, which dominate, get `threads` BLAS threads;
// the project's own kernels get the same count (set_compute_threads).
void configure_threads(int threads);

}  // namespace thinkeys

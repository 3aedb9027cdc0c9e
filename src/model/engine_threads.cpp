#include "model/engine_threads.h"

#include <ATen/Parallel.h>

// Present when libblas.so.3 is OpenBLAS (Debian's alternative); weak so any
// other BLAS still links and simply keeps its own threading.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace thinkeys {

void configure_threads(int threads) {
  threads = set_compute_threads(threads);
  at::set_num_threads(1);
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(threads);
}

}  // namespace thinkeys

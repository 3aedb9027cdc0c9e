#include "util/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "util/work_pool.h"

// Present when libblas.so.3 is OpenBLAS (Debian's alternative); weak so any
// other BLAS still links and simply keeps its own threading.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace thinkeys {
namespace {
std::atomic<int> configured{1};
}

void configure_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  configured = threads;
  at::set_num_threads(1);
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(threads);
}

int compute_threads() { return configured; }

std::shared_ptr<WorkPool> compute_pool() {
  static std::mutex mutex;
  static std::shared_ptr<WorkPool> pool;
  std::lock_guard lock(mutex);
  const int want = compute_threads();
  if (!pool || pool->threads() != want) pool = std::make_shared<WorkPool>(want);
  return pool;
}

}  // namespace thinkeys

#include "util/threads.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "util/work_pool.h"

namespace thinkeys {
namespace {
std::atomic<int> configured{1};
}

int set_compute_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  configured = threads;
  return threads;
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

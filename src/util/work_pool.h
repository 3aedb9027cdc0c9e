#pragma once
// A fixed set of threads that run the items of one parallel loop at a time.
// Decode steps call it once per layer, so it keeps its threads alive and hands
// work over without allocating.
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace thinkeys {

class WorkPool {
 public:
  // `threads` counts the calling thread, which takes items too.
  explicit WorkPool(int threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // The CPU the last run's caller was on, which the workers were kept off
  // (-1: not done, e.g. only one CPU allowed or not Linux).
  int steered_from() const { return steered_from_; }

  // Calls fn(item, thread) for every item in [0, n), thread in [0, threads()),
  // and returns when all are done; rethrows the first exception thrown.
  template <class F>
  void run(int n, F&& fn) {
    run_erased(n, &fn, [](void* f, int item, int thread) { (*static_cast<F*>(f))(item, thread); });
  }

 private:
  using Call = void (*)(void*, int, int);
  void run_erased(int n, void* fn, Call call);
  void work(int thread);
  void drain(int thread);
  void steer_workers();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  long generation_ = 0;
  int busy_ = 0;  // workers still inside the current generation
  bool stop_ = false;

  void* fn_ = nullptr;
  Call call_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0};
  std::exception_ptr error_;
  int steered_from_ = -1;
};

}  // namespace thinkeys

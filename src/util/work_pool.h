#pragma once
// A fixed set of threads that run the items of one parallel loop at a time.
// Decode steps call it several times per layer, so it keeps its threads alive
// and hands work over without allocating; for a short while after each run
// they poll for the next one instead of sleeping (see the constructor).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace thinkeys {

class WorkPool {
 public:
  // How long a worker polls for the next run, and the caller for the end of
  // its run, before sleeping on a condition variable. On the 2-vCPU VM a
  // sleeping thread took 30-60 us to wake, so a run of nothing cost 60-130 us
  // (two wake-ups), which is a whole decode-attention call at 1K context.
  // Polling yields the CPU only when the pool has more threads than the
  // process has CPUs (work_pool.cpp says why).
  static constexpr std::chrono::microseconds kDefaultPoll{200};

  // `threads` counts the calling thread, which takes items too.
  explicit WorkPool(int threads, std::chrono::microseconds poll = kDefaultPoll);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // CPU seconds run so far by the calling thread plus each worker, every
  // thread's own clock. The process clock (CLOCK_PROCESS_CPUTIME_ID) cannot
  // stand in for calls of a millisecond or less: Linux adds another thread's
  // time to it only at that thread's scheduler ticks and switches, so a
  // worker that kept its CPU through a short call counted for almost nothing
  // (`bench --decode` read ~51% for two busy threads).
  double cpu_seconds() const;
  // The CPU the last run's caller was on, which the workers were kept off
  // (-1: not done, e.g. only one CPU allowed or not Linux).
  int steered_from() const { return steered_from_; }

  // Calls fn(item, thread) for every item in [0, n), thread in [0, threads()),
  // and returns when all are done; rethrows the first exception thrown. A
  // call made while another is running (from another thread, or from inside
  // an item) runs its items itself, as thread 0, so one pool can be shared.
  template <class F>
  void run(int n, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run_erased(n, const_cast<void*>(static_cast<const void*>(&fn)),
               [](void* f, int item, int thread) { (*static_cast<Fn*>(f))(item, thread); });
  }

 private:
  using Call = void (*)(void*, int, int);
  void run_erased(int n, void* fn, Call call);
  void work(int thread);
  void drain(int thread);
  void steer_workers();

  std::vector<std::thread> workers_;
  std::vector<clockid_t> worker_clocks_;  // each worker's CPU-time clock (cpu_seconds)
  std::mutex running_;                    // held by the caller of the run in progress
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::chrono::microseconds poll_;
  bool yield_ = true;  // whether polling yields the CPU (see the constructor)
  // The fields of a hand-over, on one cache line of their own: a run moves
  // it between the cores about once each way. An empty run following a
  // streaming one, on the 2-vCPU VM: 0.6 us so, 0.6-0.9 sharing the line
  // with the mutexes, 0.9-1.3 with the polled fields on lines apart from the
  // written ones (a write to a line the other core polls pulls it back).
  // The run's fields are written by its caller before it bumps generation_,
  // and read by the workers after they see the bump.
  alignas(64) std::atomic<long> generation_{0};
  std::atomic<int> busy_{0};  // workers still inside the current generation
  std::atomic<bool> stop_{false};
  std::atomic<int> sleeping_workers_{0};      // waiting on wake_, or about to
  std::atomic<bool> caller_sleeping_{false};  // waiting on done_, or about to

  void* fn_ = nullptr;
  Call call_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0};
  std::atomic<bool> failed_{false};       // error_ is set
  alignas(64) std::exception_ptr error_;  // under mutex_
  int steered_from_ = -1;
};

}  // namespace thinkeys

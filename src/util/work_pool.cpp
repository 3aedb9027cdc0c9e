#include "util/work_pool.h"

#include <pthread.h>

#include "util/error.h"

#ifdef __linux__
#include <sched.h>
#endif

namespace thinkeys {
namespace {

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls ready() for up to `budget`; true once it holds. It yields every few
// polls only when the pool has more threads than CPUs (`yield`), where the
// thread it waits for may need this CPU. Otherwise it does not: sched_yield
// hands the CPU to any runnable task, and a niced background job then keeps
// it until the scheduler's next tick. On the 2-vCPU VM, with one niced
// process busy, that made each hand-over of a decode step wait 0.1-0.4 ms
// (phase timers, docs/results/decode.md), several times the GEMV it started.
template <class Ready>
bool poll_until(Ready&& ready, std::chrono::microseconds budget, bool yield) {
  if (budget.count() <= 0) return ready();
  const auto until = std::chrono::steady_clock::now() + budget;
  for (unsigned i = 1;; ++i) {
    if (ready()) return true;
    if (i % 16 != 0) {
      cpu_relax();
    } else {
      if (std::chrono::steady_clock::now() >= until) return ready();
      if (yield) std::this_thread::yield();
    }
  }
}

// CPUs this process may run on (0 if unknown).
int usable_cpus() {
#ifdef __linux__
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) return CPU_COUNT(&mask);
#endif
  return static_cast<int>(std::thread::hardware_concurrency());
}

}  // namespace

WorkPool::WorkPool(int threads, std::chrono::microseconds poll) : poll_(poll) {
  if (threads < 1) throw Error("a work pool needs at least one thread");
  const int cpus = usable_cpus();
  yield_ = cpus <= 0 || threads > cpus;
  for (int t = 1; t < threads; ++t) {
    workers_.emplace_back([this, t] { work(t); });
    clockid_t clock{};
    if (pthread_getcpuclockid(workers_.back().native_handle(), &clock) == 0)
      worker_clocks_.push_back(clock);
  }
}

double WorkPool::cpu_seconds() const {
  auto seconds = [](clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  double s = seconds(CLOCK_THREAD_CPUTIME_ID);
  for (clockid_t c : worker_clocks_) s += seconds(c);
  return s;
}

WorkPool::~WorkPool() {
  {
    std::lock_guard lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void WorkPool::drain(int thread) {
  for (int i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) {
    try {
      call_(fn_, i, thread);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true);
    }
  }
}

// Hand-overs touch the mutex only when a thread sleeps, or is about to.
// Taken on every run, it cost more cache-line transfers between the cores
// each way, and a futex sleep whenever one thread found it held by the
// other: an empty run of two threads took 1.1-1.7 us on the 2-vCPU VM, 0.5-0.6
// without (microbenchmark), and whole-model decode steps were 1.01-1.02x as
// fast without at 1K (int8 weights; bf16 1.00-1.02x; paired steps in one
// process). The sleeper flags work as a Dekker pair (every access
// sequentially consistent): a thread announces it is going to sleep, then
// checks its condition once more under the mutex; the other side changes the
// condition, then looks for sleepers. One of the two always sees the other.
void WorkPool::work(int thread) {
  long seen = 0;
  auto woken = [&] { return stop_.load() || generation_.load() != seen; };
  for (;;) {
    if (!poll_until(woken, poll_, yield_)) {
      std::unique_lock lock(mutex_);
      sleeping_workers_.fetch_add(1);
      wake_.wait(lock, woken);
      sleeping_workers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    // The run's fields were written before the generation was bumped.
    seen = generation_.load();
    drain(thread);
    if (busy_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      std::lock_guard lock(mutex_);
      done_.notify_one();
    }
  }
}

// Linux tends to wake a sleeping worker on the CPU of the thread that woke
// it; the caller then goes on draining items there and the two share one CPU
// while another idles, until load balancing moves one of them, often after
// the whole run. On the 2-vCPU VM that left one thread idle in about one
// decode-attention step in six (docs/results/decode.md). So the workers'
// affinity is set to every CPU the caller may use except the one it is on,
// re-done only when the caller has moved.
void WorkPool::steer_workers() {
#ifdef __linux__
  const int cpu = sched_getcpu();
  if (cpu < 0 || cpu == steered_from_) return;
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0 || CPU_COUNT(&mask) < 2 ||
      !CPU_ISSET(cpu, &mask))
    return;
  CPU_CLR(cpu, &mask);
  for (auto& w : workers_) pthread_setaffinity_np(w.native_handle(), sizeof(mask), &mask);
  steered_from_ = cpu;
#endif
}

void WorkPool::run_erased(int n, void* fn, Call call) {
  if (n <= 0) return;
  std::unique_lock running(running_, std::defer_lock);
  if (workers_.empty() || n == 1 || !running.try_lock()) {
    for (int i = 0; i < n; ++i) call(fn, i, 0);
    return;
  }
  steer_workers();
  fn_ = fn;
  call_ = call;
  n_ = n;
  next_.store(0);
  busy_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);
  if (sleeping_workers_.load() > 0) {
    std::lock_guard lock(mutex_);
    wake_.notify_all();
  }
  drain(0);
  auto done = [&] { return busy_.load() == 0; };
  if (!poll_until(done, poll_, yield_)) {
    std::unique_lock lock(mutex_);
    caller_sleeping_.store(true);
    done_.wait(lock, done);
    caller_sleeping_.store(false);
  }
  if (!failed_.load()) return;
  std::exception_ptr error;
  {
    std::lock_guard lock(mutex_);
    error = error_;
    error_ = nullptr;
    failed_.store(false);
  }
  std::rethrow_exception(error);
}

}  // namespace thinkeys

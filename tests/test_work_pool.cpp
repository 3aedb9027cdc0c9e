// The work pool: every item runs once, errors come back to the caller,
// workers are kept off the caller's CPU (so a woken worker does not queue
// behind the thread that woke it), runs are handed over whether the workers
// are polling or asleep, and callers that overlap share the pool safely.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <stdexcept>
#include <thread>
#include <vector>

#include "util/work_pool.h"

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

namespace thinkeys {
namespace {

TEST(WorkPool, RunsEveryItemOnceAndRethrows) {
  WorkPool pool(3);
  std::vector<std::atomic<int>> seen(1000);
  pool.run(1000, [&](int i, int thread) {
    ASSERT_GE(thread, 0);
    ASSERT_LT(thread, 3);
    seen[i]++;
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
  EXPECT_THROW(pool.run(10,
                        [](int i, int) {
                          if (i == 7) throw std::runtime_error("item 7");
                        }),
               std::runtime_error);
  int after = 0;
  pool.run(1, [&](int, int) { ++after; });  // still usable
  EXPECT_EQ(after, 1);
}

// Each item spins until its own thread's CPU clock has moved on by `spin`:
// the pool's clock must count at least the sum, whichever threads ran them.
// Counting the calling thread alone, it reads about half of it whenever the
// worker ran an item (the items wait for each other, so it does when it can).
TEST(WorkPool, CpuSecondsCountEveryThreadsOwnTime) {
  auto thread_cpu = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  constexpr double spin = 0.003;
  WorkPool pool(2);
  std::atomic<int> arrived{0};
  std::vector<int> ran_on(2, -1);
  const double before = pool.cpu_seconds();
  pool.run(2, [&](int item, int thread) {
    ran_on[item] = thread;
    arrived++;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < give_up) {
    }
    const double t0 = thread_cpu();
    while (thread_cpu() - t0 < spin) {
    }
  });
  const double counted = pool.cpu_seconds() - before;
  EXPECT_GE(counted, 2 * spin) << "items ran on threads " << ran_on[0] << " and " << ran_on[1];
}

// Lost or doubled hand-overs show up as a wrong count (or a hang): runs back
// to back reach polling workers, runs after a pause longer than the poll
// reach sleeping ones, and a zero poll always sleeps.
TEST(WorkPool, HandsOverEveryRunToPollingOrSleepingWorkers) {
  using std::chrono::microseconds;
  for (const microseconds poll : {microseconds(0), microseconds(50), WorkPool::kDefaultPoll}) {
    WorkPool pool(3, poll);
    for (int run = 0; run < 600; ++run) {
      const int n = 2 + run % 9;
      std::vector<std::atomic<int>> seen(n);
      std::atomic<int> by_workers{0};
      if (run % 100 == 99) std::this_thread::sleep_for(poll + std::chrono::milliseconds(2));
      pool.run(n, [&](int i, int thread) {
        seen[i]++;
        if (thread != 0) by_workers++;
      });
      for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1) << "poll " << poll.count();
      ASSERT_LE(by_workers.load(), n);
    }
  }
}

// The caller finishes its items first and outlasts its poll: it sleeps, and
// the last worker to finish must wake it (a lost wake-up hangs here), also
// when that worker's item threw.
TEST(WorkPool, CallerAsleepIsWokenByTheLastWorker) {
  using std::chrono::microseconds;
  for (const microseconds poll : {microseconds(0), microseconds(50)}) {
    WorkPool pool(3, poll);
    for (int run = 0; run < 40; ++run) {
      std::atomic<int> done{0}, by_workers{0};
      const bool fail = run % 4 == 3;
      auto item = [&](int, int thread) {
        if (thread == 0) {  // hold the caller until a worker has an item (2 s at most)
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
          while (by_workers.load() == 0 && std::chrono::steady_clock::now() < until) {
          }
        } else {
          by_workers++;
          std::this_thread::sleep_for(poll + microseconds(300 + 100 * (run % 3)));
          if (fail) throw std::runtime_error("worker item");
        }
        done++;
      };
      if (fail) {
        EXPECT_THROW(pool.run(3, item), std::runtime_error) << "poll " << poll.count();
      } else {
        pool.run(3, item);
        EXPECT_EQ(done.load(), 3) << "poll " << poll.count();
      }
      EXPECT_GE(by_workers.load(), 1);
    }
  }
}

// Two threads run on one pool at once, and an item runs a nested loop on it:
// the call that finds the pool busy runs its own items, as thread 0.
TEST(WorkPool, OverlappingCallersEachGetAllTheirItems) {
  WorkPool pool(2);
  auto caller = [&](int salt, std::atomic<int>& bad) {
    for (int run = 0; run < 300; ++run) {
      const int n = 3 + (run + salt) % 17;
      std::vector<std::atomic<int>> seen(n);
      pool.run(n, [&](int i, int thread) {
        if (thread < 0 || thread >= pool.threads()) bad++;
        seen[i]++;
      });
      for (auto& s : seen)
        if (s.load() != 1) bad++;
    }
  };
  std::atomic<int> bad_a{0}, bad_b{0};
  std::thread other([&] { caller(1, bad_b); });
  caller(0, bad_a);
  other.join();
  EXPECT_EQ(bad_a.load(), 0);
  EXPECT_EQ(bad_b.load(), 0);

  std::atomic<int> inner{0}, inner_thread_sum{0};
  pool.run(4, [&](int, int) {
    pool.run(5, [&](int, int thread) {
      inner++;
      inner_thread_sum += thread;
    });
  });
  EXPECT_EQ(inner.load(), 20);
  EXPECT_EQ(inner_thread_sum.load(), 0);
}

#ifdef __linux__
TEST(WorkPool, WorkersAreKeptOffTheCallersCpu) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  WorkPool pool(2);
  std::vector<cpu_set_t> masks(64);
  std::atomic<int> n_masks{0};
  pool.run(64, [&](int, int thread) {
    if (thread == 0) {
      // Hold the caller until the worker has taken an item (2 s at most).
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (n_masks.load() == 0 && std::chrono::steady_clock::now() < until) {
      }
      return;
    }
    cpu_set_t m;
    pthread_getaffinity_np(pthread_self(), sizeof(m), &m);
    masks[n_masks++] = m;
  });
  if (CPU_COUNT(&allowed) < 2) {
    EXPECT_EQ(pool.steered_from(), -1);  // nothing to steer to
    return;
  }
  const int from = pool.steered_from();
  ASSERT_GE(from, 0);
  ASSERT_GT(n_masks.load(), 0);
  EXPECT_TRUE(CPU_ISSET(from, &allowed));
  for (int i = 0; i < n_masks; ++i) {
    EXPECT_FALSE(CPU_ISSET(from, &masks[i]));
    EXPECT_EQ(CPU_COUNT(&masks[i]), CPU_COUNT(&allowed) - 1);
  }
}

TEST(WorkPool, OneAllowedCpuStillRunsEverything) {
  cpu_set_t saved, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &saved)) {
      CPU_SET(c, &one);
      break;
    }
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  {
    WorkPool pool(3);  // workers inherit the single CPU
    std::atomic<int> done{0};
    pool.run(100, [&](int, int) { done++; });
    EXPECT_EQ(done.load(), 100);
    EXPECT_EQ(pool.steered_from(), -1);
  }
  sched_setaffinity(0, sizeof(saved), &saved);
}
#endif

}  // namespace
}  // namespace thinkeys

#include "bench/cpu_clock.h"

#include <chrono>
#include <ctime>

#include "util/work_pool.h"

namespace thinkeys {

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

namespace {
double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

PoolCpuSample pool_cpu_sample(const WorkPool& pool) {
  const double before = steady_seconds();
  const double cpu = pool.cpu_seconds();
  return {cpu, 0.5 * (before + steady_seconds())};
}

double pool_cpu_share(const PoolCpuSample& from, const PoolCpuSample& to, int threads) {
  const double wall = to.wall - from.wall;
  return wall > 0 && threads > 0 ? (to.cpu - from.cpu) / (wall * threads) : 0.0;
}

}  // namespace thinkeys

#pragma once

namespace thinkeys {

class WorkPool;

// CPU seconds this process has used, all threads: beside wall time it shows
// how much of a measurement was spent waiting for a core on a shared machine.
// Another thread's time reaches it only at that thread's scheduler ticks and
// switches, so it suits runs of many milliseconds (prefill, whose libtorch
// threads are not a WorkPool's); pool_cpu_sample suits short calls.
double process_cpu_seconds();

// A pool's threads' CPU seconds (WorkPool::cpu_seconds) and the steady clock
// in the middle of reading them.
struct PoolCpuSample {
  double cpu = 0, wall = 0;
};
PoolCpuSample pool_cpu_sample(const WorkPool& pool);

// The share of the time between two samples that the pool's threads were on
// a CPU: below 1 on a shared machine means they did not keep their cores.
// The wall time is the samples' own, so the clock reads count on both sides.
double pool_cpu_share(const PoolCpuSample& from, const PoolCpuSample& to, int threads);

}  // namespace thinkeys

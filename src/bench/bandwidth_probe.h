#pragma once
// Measures the machine's sustained memory read bandwidth with a streaming sum
// over a buffer much larger than the last-level cache, so benchmarks can state
// their results against what the hardware can do in the same run.
#include <cstddef>

namespace thinkeys {

struct BandwidthResult {
  double gb_per_s = 0;  // 1e9 bytes per second
  int threads = 0;
  std::size_t bytes = 0;
};

BandwidthResult probe_read_bandwidth(int threads, std::size_t bytes = std::size_t{512} << 20,
                                     int repeats = 5);

}  // namespace thinkeys

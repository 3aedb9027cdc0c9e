#include "bench/bandwidth_probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace thinkeys {
namespace {

// Four independent integer accumulators: vectorizes without -ffast-math and
// keeps the loop bound by loads, not by an add dependency chain.
uint64_t stream_sum(const uint64_t* p, std::size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

}  // namespace

BandwidthResult probe_read_bandwidth(int threads, std::size_t bytes, int repeats) {
  threads = std::max(1, threads);
  const std::size_t words = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buf(words);
  for (std::size_t i = 0; i < words; ++i) buf[i] = i * 2654435761u;
  std::atomic<uint64_t> sink{0};
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    const std::size_t chunk = words / threads;
    for (int t = 0; t < threads; ++t) {
      std::size_t begin = t * chunk, n = t + 1 == threads ? words - begin : chunk;
      pool.emplace_back([&, begin, n] { sink += stream_sum(buf.data() + begin, n); });
    }
    for (auto& th : pool) th.join();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  BandwidthResult res;
  res.threads = threads;
  res.bytes = words * sizeof(uint64_t);
  res.gb_per_s = static_cast<double>(res.bytes) / best / 1e9;
  if (sink.load() == 42) res.gb_per_s += 0;  // keeps the sums observable
  return res;
}

}  // namespace thinkeys

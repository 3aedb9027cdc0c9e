#include "bench/bandwidth_probe.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "cache/block_pool.h"

namespace thinkeys {
namespace {

// Eight independent integer accumulators: vectorizes without -ffast-math and
// keeps the loop bound by loads, not by an add dependency chain.
template <bool Prefetch>
uint64_t stream_sum(const uint64_t* p, std::size_t n) {
  // 4 KiB ahead into L2 (hint 2): on the Intel VM this beat the hardware
  // prefetcher alone by about 10%; L1 (hint 3) and non-temporal (hint 0)
  // requests were slower (docs/results/decode.md).
  constexpr std::size_t kAhead = 512;
  uint64_t a[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if constexpr (Prefetch) __builtin_prefetch(p + i + kAhead, 0, 2);
    for (int k = 0; k < 8; ++k) a[k] += p[i + k];
  }
  for (; i < n; ++i) a[0] += p[i];
  uint64_t s = 0;
  for (uint64_t x : a) s += x;
  return s;
}

}  // namespace

std::size_t last_level_cache_bytes() {
  long best = 0;
#ifdef _SC_LEVEL4_CACHE_SIZE
  best = std::max(best, sysconf(_SC_LEVEL4_CACHE_SIZE));
#endif
#ifdef _SC_LEVEL3_CACHE_SIZE
  best = std::max(best, sysconf(_SC_LEVEL3_CACHE_SIZE));
#endif
#ifdef _SC_LEVEL2_CACHE_SIZE
  best = std::max(best, sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
  return best > 0 ? static_cast<std::size_t>(best) : 0;
}

StreamBuffer::StreamBuffer(int threads, std::size_t bytes) : threads_(std::max(1, threads)) {
  if (bytes == 0) bytes = std::max(std::size_t{1} << 30, 2 * last_level_cache_bytes());
  bytes_ = bytes / (64 * sizeof(uint64_t)) * (64 * sizeof(uint64_t));
  pool_ = std::make_unique<BlockPool>(bytes_, bytes_, true);
  auto* p = reinterpret_cast<uint64_t*>(pool_->data(0));
  const std::size_t words = bytes_ / sizeof(uint64_t);
  for (std::size_t i = 0; i < words; ++i) p[i] = i * 2654435761u;
}

StreamBuffer::~StreamBuffer() = default;

double StreamBuffer::read(bool software_prefetch) {
  const auto* p = reinterpret_cast<const uint64_t*>(pool_->data(0));
  const std::size_t words = bytes_ / sizeof(uint64_t), chunk = words / threads_;
  std::atomic<uint64_t> sink{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads_; ++t) {
    const std::size_t begin = t * chunk, n = t + 1 == threads_ ? words - begin : chunk;
    pool.emplace_back([&, begin, n] {
      sink += software_prefetch ? stream_sum<true>(p + begin, n) : stream_sum<false>(p + begin, n);
    });
  }
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The sum must stay observable or the reads could be dropped.
  return static_cast<double>(bytes_) / s / 1e9 + (sink.load() == 42 ? 1e-12 : 0.0);
}

BandwidthResult StreamBuffer::probe(int repeats) {
  BandwidthResult res;
  res.threads = threads_;
  res.bytes = bytes_;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    res.plain_gb_per_s = std::max(res.plain_gb_per_s, read(false));
    res.prefetch_gb_per_s = std::max(res.prefetch_gb_per_s, read(true));
  }
  res.gb_per_s = std::max(res.plain_gb_per_s, res.prefetch_gb_per_s);
  return res;
}

BandwidthResult probe_read_bandwidth(int threads, std::size_t bytes, int repeats) {
  return StreamBuffer(threads, bytes).probe(repeats);
}

}  // namespace thinkeys

#pragma once
// The machine's sustained memory read bandwidth, measured by streaming over a
// buffer at least twice the last-level cache (so it is read from DRAM, not
// from a large L3), on huge pages like the KV cache pool. The same buffer
// evicts the caches between benchmark repetitions: a decode step's cache was
// last touched a whole model step ago, so timing it warm from L3 would
// overstate the kernel.
#include <cstddef>
#include <memory>

namespace thinkeys {

class BlockPool;

struct BandwidthResult {
  double gb_per_s = 0;           // best of the methods below, 1e9 bytes per second
  double plain_gb_per_s = 0;     // sum, hardware prefetcher only
  double prefetch_gb_per_s = 0;  // sum with software prefetch into L2
  int threads = 0;
  std::size_t bytes = 0;
};

// Size of the largest cache level the OS reports (0 if it reports none).
std::size_t last_level_cache_bytes();

class StreamBuffer {
 public:
  // bytes = 0: max(1 GiB, 2 x last-level cache).
  explicit StreamBuffer(int threads, std::size_t bytes = 0);
  ~StreamBuffer();
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;

  // Reads the whole buffer once on `threads` threads; returns GB/s.
  double read(bool software_prefetch);
  // Both methods, best of `repeats` each.
  BandwidthResult probe(int repeats = 3);
  std::size_t bytes() const { return bytes_; }
  int threads() const { return threads_; }

 private:
  int threads_;
  std::size_t bytes_;
  std::unique_ptr<BlockPool> pool_;
};

BandwidthResult probe_read_bandwidth(int threads, std::size_t bytes = 0, int repeats = 3);

}  // namespace thinkeys

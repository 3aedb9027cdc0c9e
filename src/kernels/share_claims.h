#pragma once
// Units of work [0, n) split into one contiguous share per worker. A worker
// takes units from the front of its own share, in order, and when that is
// empty takes the back half of what is left of another's. So each worker
// reads its share front to back as one stream, and the two VM CPUs, which
// stream at different rates (28 against 23 GB/s alone on the Zen 5 VM), end
// together: a static half each left the faster one idle for a fifth of a
// 1K decode-attention call (docs/results/decode.md).
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>

namespace thinkeys {

class ShareClaims {
 public:
  static constexpr int kMaxShares = 16;

  struct Take {
    int first = 0, count = 0;  // units [first, first + count); count 0: none left
  };

  // Not concurrent with next().
  void reset(int units, int shares) {
    shares_ = std::clamp(shares, 1, kMaxShares);
    for (int s = 0; s < shares_; ++s) {
      const auto front = static_cast<uint32_t>(std::int64_t{units} * s / shares_);
      const auto back = static_cast<uint32_t>(std::int64_t{units} * (s + 1) / shares_);
      share_[s].range.store(pack(front, back), std::memory_order_relaxed);
    }
  }

  // The next units for worker `w` (its own share is w % shares): up to
  // `own` units from its share's front, else half of another share's rest
  // (at least one unit) from its back.
  Take next(int w, int own) {
    const int mine = w % shares_;
    if (Take t = take_front(share_[mine].range, own); t.count > 0) return t;
    for (int k = 1; k < shares_; ++k)
      if (Take t = take_back(share_[(mine + k) % shares_].range); t.count > 0) return t;
    return {};
  }

 private:
  static uint64_t pack(uint32_t front, uint32_t back) { return uint64_t{back} << 32 | front; }
  static uint32_t front_of(uint64_t r) { return static_cast<uint32_t>(r); }
  static uint32_t back_of(uint64_t r) { return static_cast<uint32_t>(r >> 32); }

  static Take take_front(std::atomic<uint64_t>& range, int most) {
    uint64_t r = range.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t f = front_of(r), b = back_of(r);
      if (f >= b) return {};
      const auto n = std::min<uint32_t>(b - f, static_cast<uint32_t>(std::max(1, most)));
      if (range.compare_exchange_weak(r, pack(f + n, b), std::memory_order_relaxed))
        return {static_cast<int>(f), static_cast<int>(n)};
    }
  }

  static Take take_back(std::atomic<uint64_t>& range) {
    uint64_t r = range.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t f = front_of(r), b = back_of(r);
      if (f >= b) return {};
      const uint32_t n = std::max<uint32_t>(1, (b - f) / 2);
      if (range.compare_exchange_weak(r, pack(f, b - n), std::memory_order_relaxed))
        return {static_cast<int>(b - n), static_cast<int>(n)};
    }
  }

  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::array<Share, kMaxShares> share_;
  int shares_ = 1;
};

}  // namespace thinkeys

#pragma once
// Software prefetch a fixed distance ahead of where a thread reads.
//
// The cursor walks byte ranges in the order the thread will read them (for
// decode attention: one run's key rows, its value rows, then the next run's)
// and the reader moves it on by the bytes it consumes, so each 64-byte line
// is requested once, `ahead` bytes before it is read, and the requests are
// spread over the computation instead of issued in bursts.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/prefetch_tuning.h"

namespace thinkeys {

// How far ahead: PrefetchTuning::attention_bytes (kernels/prefetch_tuning.h).
// On the Intel VM of earlier sessions, 2-3 KiB ahead ran decode attention
// 10-17% faster from DRAM than a whole run (16-64 KiB) ahead, and a plain f16
// stream with gqa's arithmetic read 27 GB/s at 2 KiB against 22 GB/s at
// 8 KiB. On the AMD Zen 4 VM 6 KiB beat 3 KiB: the --decode-model layers at
// 16K-32K context, batch 1, ran 13-24% faster in the kernel sweep (one cell
// 2%) and gqa's whole-model steps 6-12% faster (docs/results/decode.md); 8
// KiB was better in some cells, worse in others.

// Into L2: the non-temporal hint ran the kernel at 0.4x at 32K context.
struct PrefetchIntoL2 {
  void operator()(std::uintptr_t line) const {
    __builtin_prefetch(reinterpret_cast<const void*>(line), 0, 2);
  }
};

template <class Request = PrefetchIntoL2>
class PrefetchCursor {
 public:
  static constexpr int kMaxRanges = 8;

  explicit PrefetchCursor(std::size_t ahead = prefetch_tuning().attention_bytes,
                          Request request = {})
      : ahead_(ahead), request_(request) {}

  // Ranges past kMaxRanges are not prefetched. A range that starts where the
  // last one ends extends it (a head's key rows are followed by its value
  // rows, then by the next head's), so the cursor rarely leaves its fast path.
  void add(const std::byte* p, std::size_t n) {
    if (n == 0) return;
    const auto at = reinterpret_cast<std::uintptr_t>(p);
    if (count_ > 0 && ranges_[count_ - 1].p + ranges_[count_ - 1].n == at)
      ranges_[count_ - 1].n += n;
    else if (count_ < kMaxRanges)
      ranges_[count_++] = {at, n};
  }

  // After the last add: puts the cursor `ahead` bytes into the ranges. The
  // reader's previous cursor asked for those bytes; when there was none,
  // `request` asks for them now.
  void start(bool request) {
    enter(0);
    pos_ += ahead_;
    if (!request && pos_ <= end_) {
      line_ = pos_ & ~std::uintptr_t{63};
      return;
    }
    walk(ahead_, request);
  }

  // Bytes the cursor can move on before it leaves its current range: an
  // advance_within of up to that many needs no walk over the ranges.
  std::size_t bytes_in_range() const { return pos_ < end_ ? end_ - pos_ : 0; }

  // advance(bytes) for bytes <= bytes_in_range(): always inline and free of
  // calls, so a loop that keeps its accumulators in vector registers can
  // move the cursor on without spilling them (every vector register is
  // caller-saved).
  [[gnu::always_inline]] inline void advance_within(std::size_t bytes) {
    pos_ += bytes;
    request_to(pos_);
  }

  // The reader has consumed `bytes` more.
  void advance(std::size_t bytes) {
    pos_ += bytes;
    if (pos_ <= end_) [[likely]] {
      request_to(pos_);
      return;
    }
    walk(bytes, true);
  }

 private:
  struct Range {
    std::uintptr_t p;
    std::size_t n;
  };

  void request_to(std::uintptr_t to) {
    for (; line_ < to; line_ += 64) request_(line_);
  }
  void enter(int k) {
    i_ = k;
    if (i_ < count_) {
      pos_ = ranges_[i_].p;
      end_ = pos_ + ranges_[i_].n;
      line_ = pos_ & ~std::uintptr_t{63};
    } else {
      pos_ = end_ = line_ = 0;
    }
  }
  // pos_ was moved on by `bytes` past end_: spread them over the ranges.
  [[gnu::noinline]] void walk(std::size_t bytes, bool request) {
    pos_ -= bytes;
    while (bytes > 0 && i_ < count_) {
      const std::size_t take = std::min<std::size_t>(bytes, end_ - pos_);
      pos_ += take;
      bytes -= take;
      if (request)
        request_to(pos_);
      else
        line_ = pos_ & ~std::uintptr_t{63};
      if (pos_ == end_) enter(i_ + 1);
    }
  }

  std::size_t ahead_;
  Request request_;
  Range ranges_[kMaxRanges] = {};
  int count_ = 0, i_ = 0;
  std::uintptr_t pos_ = 0, end_ = 0, line_ = 0;
};

}  // namespace thinkeys

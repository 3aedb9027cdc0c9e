#pragma once
// Fixed-length training windows cut from one token stream, served as an
// endless stream of samples: epoch e visits all N non-overlapping windows in a
// permutation seeded by (seed, e). Sample i is window perm_{i / N}[i % N], so
// any sample can be produced without replaying the ones before it.
#include <cstdint>
#include <vector>

#include "train/batch.h"

namespace thinkeys {

class WindowDataset {
 public:
  // Windows hold seq_len + 1 tokens (inputs and shifted targets) and start
  // every seq_len tokens. Throws Error if the stream is shorter than one window.
  WindowDataset(std::vector<int32_t> tokens, int seq_len, uint64_t seed, bool shuffle = true);

  int64_t windows() const { return n_windows_; }
  int seq_len() const { return seq_len_; }
  int64_t tokens() const { return static_cast<int64_t>(tokens_.size()); }

  // Samples [first, first + count) of the stream (wrapping into later epochs).
  Batch samples(int64_t first, int count) const;
  // Windows [first, first + count) in file order (validation); count is cut
  // at the end of the data.
  Batch windows_in_order(int64_t first, int count) const;

  SampleSource source() const;

 private:
  int64_t window_at(int64_t sample) const;
  std::vector<int32_t> tokens_;
  int seq_len_;
  uint64_t seed_;
  bool shuffle_;
  int64_t n_windows_;
  mutable int64_t perm_epoch_ = -1;
  mutable std::vector<int64_t> perm_;
};

}  // namespace thinkeys

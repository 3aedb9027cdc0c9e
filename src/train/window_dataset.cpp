#include "train/window_dataset.h"

#include <algorithm>
#include <memory>
#include <numeric>

#include "util/error.h"

namespace thinkeys {
namespace {

// SplitMix64: a tiny, fully specified generator, so shuffles are the same on
// every platform and standard library.
uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

WindowDataset::WindowDataset(std::vector<int32_t> tokens, int seq_len, uint64_t seed, bool shuffle)
    : tokens_(std::move(tokens)), seq_len_(seq_len), seed_(seed), shuffle_(shuffle) {
  if (seq_len_ <= 0) throw Error("sequence length must be positive");
  n_windows_ = tokens_.size() > 0 ? (static_cast<int64_t>(tokens_.size()) - 1) / seq_len_ : 0;
  if (n_windows_ == 0)
    throw Error("data has " + std::to_string(tokens_.size()) +
                " tokens, fewer than one window of " + std::to_string(seq_len_ + 1));
}

int64_t WindowDataset::window_at(int64_t sample) const {
  const int64_t epoch = sample / n_windows_, idx = sample % n_windows_;
  if (!shuffle_) return idx;
  if (epoch != perm_epoch_) {
    perm_.resize(static_cast<size_t>(n_windows_));
    std::iota(perm_.begin(), perm_.end(), 0);
    uint64_t state = seed_ * 0x100000001B3ull + static_cast<uint64_t>(epoch);
    for (int64_t i = n_windows_ - 1; i > 0; --i)
      std::swap(perm_[i], perm_[splitmix(state) % static_cast<uint64_t>(i + 1)]);
    perm_epoch_ = epoch;
  }
  return perm_[static_cast<size_t>(idx)];
}

Batch WindowDataset::samples(int64_t first, int count) const {
  at::Tensor buf = at::empty({count, seq_len_ + 1}, at::kLong);
  int64_t* p = buf.data_ptr<int64_t>();
  for (int b = 0; b < count; ++b) {
    const int32_t* src = tokens_.data() + window_at(first + b) * seq_len_;
    std::copy(src, src + seq_len_ + 1, p + static_cast<int64_t>(b) * (seq_len_ + 1));
  }
  return {buf.narrow(1, 0, seq_len_).contiguous(), buf.narrow(1, 1, seq_len_).contiguous()};
}

Batch WindowDataset::windows_in_order(int64_t first, int count) const {
  count = static_cast<int>(std::min<int64_t>(count, n_windows_ - first));
  if (count <= 0) throw Error("validation window out of range");
  at::Tensor buf = at::empty({count, seq_len_ + 1}, at::kLong);
  int64_t* p = buf.data_ptr<int64_t>();
  for (int b = 0; b < count; ++b) {
    const int32_t* src = tokens_.data() + (first + b) * seq_len_;
    std::copy(src, src + seq_len_ + 1, p + static_cast<int64_t>(b) * (seq_len_ + 1));
  }
  return {buf.narrow(1, 0, seq_len_).contiguous(), buf.narrow(1, 1, seq_len_).contiguous()};
}

SampleSource WindowDataset::source() const {
  return [this](int64_t first, int count) { return samples(first, count); };
}

}  // namespace thinkeys

#pragma once
// Contiguous per-sequence KV cache in f32: layer l stores key_width(l) values
// per key head per token for keys and head_dim per KV head for values, so thin
// keys take physically fewer bytes. Allocated once for a fixed capacity.
#include <ATen/ATen.h>

#include <vector>

#include "config/model_config.h"

namespace thinkeys {

class KVCache {
 public:
  KVCache(const ModelConfig& config, int capacity);

  int capacity() const { return capacity_; }
  int length() const { return length_; }
  void clear() { length_ = 0; }
  // Drops everything after the first n tokens (for sliding-window evaluation).
  void truncate(int n);

  at::Tensor& keys(int layer) { return keys_[layer]; }      // [key heads, capacity, r_l]
  at::Tensor& values(int layer) { return values_[layer]; }  // [Hkv, capacity, d]
  void advance(int n) { length_ += n; }

  int64_t allocated_bytes() const;

 private:
  std::vector<at::Tensor> keys_, values_;
  int capacity_;
  int length_ = 0;
};

}  // namespace thinkeys

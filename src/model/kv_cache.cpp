#include "model/kv_cache.h"

#include "model/dense_cache_bytes.h"
#include "util/error.h"

namespace thinkeys {

KVCache::KVCache(const ModelConfig& c, int capacity) : capacity_(capacity) {
  if (capacity <= 0) throw Error("KV cache capacity must be positive");
  for (int l = 0; l < c.n_layers; ++l) {
    keys_.push_back(at::empty({c.cache_key_heads(l), capacity, c.cache_key_width(l)}, at::kFloat));
    values_.push_back(
        at::empty({c.cache_value_heads(), capacity, c.cache_value_width()}, at::kFloat));
  }
}

void KVCache::truncate(int n) {
  if (n < 0 || n > length_) throw Error("KV cache truncate out of range");
  length_ = n;
}

int64_t KVCache::allocated_bytes() const {
  int64_t n = 0;
  for (size_t l = 0; l < keys_.size(); ++l) n += keys_[l].nbytes() + values_[l].nbytes();
  return n;
}

int64_t dense_cache_bytes_per_token(const ModelConfig& config) {
  return KVCache(config, 1).allocated_bytes();
}

}  // namespace thinkeys

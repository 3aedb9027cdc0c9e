#pragma once
// What one token costs in the dense f32 KVCache (model/kv_cache.h), for
// reports that should not include libtorch to say so.
#include <cstdint>

#include "config/model_config.h"

namespace thinkeys {

// Bytes of a real one-token KVCache allocation for `config` (so the figure is
// what the cache holds, not a formula beside it).
int64_t dense_cache_bytes_per_token(const ModelConfig& config);

}  // namespace thinkeys

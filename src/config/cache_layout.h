#pragma once
// What a model needs from the paged cache: per layer, how many key and value
// rows one token caches and how wide they are. The cache itself knows nothing
// of models; this is where a model's attention design becomes cache shapes.
#include <vector>

#include "cache/cache_footprint.h"
#include "config/model_config.h"

namespace thinkeys {

// One layer shape per model layer: key heads (KV heads / share) of the
// layer's cached key width, KV heads of head_dim values; for MLA and LRKV the
// rows the dense cache holds (ModelConfig::cache_key_width and so on), one
// key row per token read by every query head.
std::vector<CacheLayerShape> cache_shape(const ModelConfig& config);

}  // namespace thinkeys

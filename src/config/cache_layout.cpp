#include "config/cache_layout.h"

namespace thinkeys {

std::vector<CacheLayerShape> cache_shape(const ModelConfig& c) {
  c.require_standard_attention("the paged cache (and batched decoding)");
  std::vector<CacheLayerShape> out;
  for (int l = 0; l < c.n_layers; ++l)
    out.push_back(
        {c.key_heads(), c.key_width(l), c.n_kv_heads, c.head_dim, c.n_heads / c.key_heads()});
  return out;
}

}  // namespace thinkeys

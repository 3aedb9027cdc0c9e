#include "config/cache_layout.h"

namespace thinkeys {

std::vector<CacheLayerShape> cache_shape(const ModelConfig& c) {
  std::vector<CacheLayerShape> out;
  for (int l = 0; l < c.n_layers; ++l) {
    if (!c.is_standard_attention()) {
      // One cached row per token that every query head reads (MLA: values
      // are its latent part; LRKV: one value row beside it).
      out.push_back(
          {1, c.cache_key_width(l), c.cache_value_heads(), c.cache_value_width(), c.n_heads});
      continue;
    }
    out.push_back(
        {c.key_heads(), c.key_width(l), c.n_kv_heads, c.head_dim, c.n_heads / c.key_heads()});
  }
  return out;
}

}  // namespace thinkeys

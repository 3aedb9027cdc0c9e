#include "cache/cache_footprint.h"

#include <string>

#include "cache/block_pool.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::size_t align_up(std::size_t n) {
  return (n + BlockPool::kAlignment - 1) / BlockPool::kAlignment * BlockPool::kAlignment;
}

}  // namespace

long long CacheFootprint::blocks_for_tokens(long long tokens) const {
  return (tokens + block_tokens - 1) / block_tokens;
}

std::size_t CacheFootprint::blocks_in_budget(std::size_t budget_bytes) const {
  return BlockPool::blocks_in(budget_bytes, block_bytes);
}

CacheFootprint cache_footprint(const std::vector<CacheLayerShape>& layers, const CacheSpec& spec) {
  if (layers.empty()) throw Error("paged KV cache needs at least one layer");
  if (spec.block_tokens <= 0) throw Error("tokens per cache block must be positive");
  CacheFootprint f;
  f.block_tokens = spec.block_tokens;
  const std::size_t bt = spec.block_tokens;
  for (const auto& L : layers) {
    // No value rows: the values are the keys' leading elements (MLA).
    const bool values_in_keys = L.value_heads == 0 && L.value_width == 0;
    if (L.key_heads <= 0 || L.key_width <= 0 ||
        (!values_in_keys && (L.value_heads <= 0 || L.value_width <= 0)))
      throw Error("paged KV cache layer shape must be positive");
    if (values_in_keys && is_quantized(spec.key_dtype))
      throw Error(std::string("this model's values are read from its cached keys (MLA's latent), "
                              "which must then be f32, f16 or bf16, not ") +
                  to_string(spec.key_dtype));
    if (L.value_heads % L.key_heads != 0)
      throw Error("paged KV cache: " + std::to_string(L.value_heads) +
                  " value heads cannot be split evenly over " + std::to_string(L.key_heads) +
                  " key heads");
    LayerFootprint g;
    g.key_format = make_row_format(spec.key_dtype, L.key_width, spec.group, spec.rotate_keys);
    if (!values_in_keys)
      g.value_format = make_row_format(spec.value_dtype, L.value_width, spec.group);
    g.key_heads = L.key_heads;
    g.share = L.value_heads / L.key_heads;
    // A key head's rows are followed by the rows of the value heads that
    // read it, so a decode task streams one run per block instead of two
    // (docs/results/decode.md); each run starts on a cache line so vector
    // loads never straddle two heads' rows. Stored by channel, an int4 key
    // takes ceil(bt / 2) bytes per channel, never more than its rows'
    // bytes, so the stride holds either layout.
    g.key_stride = align_up(g.key_format.bytes() * bt);
    g.value_stride = values_in_keys ? 0 : align_up(g.value_format.bytes() * bt);
    g.stride = g.key_stride + g.share * g.value_stride;
    f.key_block_bytes += g.key_bytes();
    f.value_block_bytes += g.value_bytes();
    f.key_payload_per_token += L.key_heads * g.key_format.bytes();
    f.value_payload_per_token += L.value_heads * g.value_format.bytes();
    f.layers.push_back(g);
  }
  // Every run is cache-line aligned, so the block already is; the pool's
  // rounding is applied anyway so block_bytes is what the pool holds.
  f.block_bytes = BlockPool::rounded_block_bytes(f.key_block_bytes + f.value_block_bytes);
  return f;
}

}  // namespace thinkeys

#pragma once
// How many bytes the paged KV cache spends per block, per token and per
// budget, computed without allocating anything. PagedKVCache lays its blocks
// out from this and BlockPool counts its blocks with the same rounding, so a
// capacity plan (src/plan/) made from it is what the cache really holds.
#include <cstddef>
#include <vector>

#include "format/cache_dtype.h"

namespace thinkeys {

struct CacheLayerShape {
  int key_heads = 0, key_width = 0;  // cached key rows per token and their width
  // Both 0: no value rows, the values are read from the keys (MLA's cached
  // latent; float key dtypes only, stored token by token).
  int value_heads = 0, value_width = 0;
  int queries_per_key = 0;  // query heads reading each key head (0: not known)
};

struct CacheSpec {
  CacheDType key_dtype = CacheDType::F16;
  CacheDType value_dtype = CacheDType::F16;
  int group = kDefaultQuantGroup;  // values per scale for int8/int4
  int block_tokens = 64;           // not 16: longer per-head runs (docs/results/decode.md)
  std::size_t budget_bytes = std::size_t{1} << 30;
  bool huge_pages = true;  // ask for transparent huge pages (BlockPool)
  // Quantized keys of power-of-two width are stored Hadamard-rotated (see
  // make_row_format); the decode kernel rotates the query to match.
  bool rotate_keys = true;
  // Keys are stored channel by channel within a block (PagedRows::by_channel;
  // int4 keys only when block_tokens is even): the decode kernel then scores
  // a vector of tokens per FMA and needs no horizontal sums. Same bytes
  // either way. PagedKVCache::keys_by_channel says which layers take it.
  bool keys_by_channel = true;
};

// One layer's rows in a block: a key head's rows, then those of the value
// heads that read it ([h * share, (h + 1) * share)), repeated for every key
// head; each run starts on a cache line (BlockPool::kAlignment).
struct LayerFootprint {
  RowFormat key_format, value_format;
  int key_heads = 0, share = 1;
  std::size_t key_stride = 0;    // bytes of one key head's rows in a block
  std::size_t value_stride = 0;  // of one value head's rows
  std::size_t stride = 0;        // of a key head and the value heads after it
  std::size_t section_bytes() const { return stride * static_cast<std::size_t>(key_heads); }
  std::size_t key_bytes() const { return key_stride * static_cast<std::size_t>(key_heads); }
  std::size_t value_bytes() const { return section_bytes() - key_bytes(); }
};

struct CacheFootprint {
  std::vector<LayerFootprint> layers;
  int block_tokens = 0;
  std::size_t block_bytes = 0;        // one block of every layer, as BlockPool holds it
  std::size_t key_block_bytes = 0;    // the keys' share of block_bytes
  std::size_t value_block_bytes = 0;  // the values' share
  // Bytes of rows and scales one token needs (docs/design.md section 7), before
  // the block's alignment padding.
  std::size_t key_payload_per_token = 0, value_payload_per_token = 0;

  std::size_t payload_bytes_per_token() const {
    return key_payload_per_token + value_payload_per_token;
  }
  // What the pool spends per token, alignment included.
  double bytes_per_token() const { return static_cast<double>(block_bytes) / block_tokens; }
  // Whole blocks a sequence of `tokens` tokens takes (PagedKVCache::reserve).
  long long blocks_for_tokens(long long tokens) const;
  // Blocks a pool of `budget_bytes` holds (BlockPool; may be 0 here, where
  // the pool throws).
  std::size_t blocks_in_budget(std::size_t budget_bytes) const;
};

// Checks the shapes and spec as PagedKVCache does (Error with the cache's
// own message on a bad one) and lays the block out.
CacheFootprint cache_footprint(const std::vector<CacheLayerShape>& layers, const CacheSpec& spec);

}  // namespace thinkeys

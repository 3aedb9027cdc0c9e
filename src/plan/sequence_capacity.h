#pragma once
// How many sequences of a given length a paged KV cache budget holds, from
// the cache's own block layout (cache/cache_footprint.h) and nothing else:
// the number a PagedKVCache of that budget can reserve() before it runs out.
// The server prints it at start; `thinkeys plan` builds its tables from it.
#include <cstddef>
#include <string>

#include "cache/cache_footprint.h"
#include "config/cache_layout.h"
#include "config/model_config.h"

namespace thinkeys {

struct SequenceCapacity {
  long long ctx = 0;                   // tokens per sequence asked about
  int block_tokens = 0;                // tokens per block
  std::size_t block_bytes = 0;         // bytes of one block, every layer, keys and values
  std::size_t budget_bytes = 0;        // cache budget asked about
  std::size_t blocks = 0;              // blocks the budget holds
  long long blocks_per_sequence = 0;   // whole blocks one sequence of ctx tokens takes
  std::size_t bytes_per_sequence = 0;  // blocks_per_sequence x block_bytes
  long long sequences = 0;             // sequences of ctx tokens that fit at once
  long long longest_tokens = 0;        // tokens one sequence could hold alone (all blocks)
  std::size_t pool_bytes = 0;          // blocks x block_bytes: what the pool really uses
};

// The budget is CacheSpec-style: all of it goes to whole blocks.
SequenceCapacity sequence_capacity(const CacheFootprint& footprint, std::size_t budget_bytes,
                                   long long ctx);
// For a model and the spec a server would give its cache (spec.budget_bytes
// is the budget). Throws Error for a spec the cache would refuse.
SequenceCapacity sequence_capacity(const ModelConfig& config, const CacheSpec& spec, long long ctx);

// One line for a log: "KV cache 1.50 GiB in 96 blocks of 64 tokens (16.0 MiB
// each): 12 sequences of 4096 tokens fit at once; one sequence alone up to
// 6144 tokens".
std::string describe(const SequenceCapacity& capacity);

}  // namespace thinkeys

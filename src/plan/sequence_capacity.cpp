#include "plan/sequence_capacity.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "plan/byte_size.h"
#include "util/error.h"

namespace thinkeys {

SequenceCapacity sequence_capacity(const CacheFootprint& f, std::size_t budget_bytes,
                                   long long ctx) {
  if (ctx <= 0) throw Error("context length must be positive, got " + std::to_string(ctx));
  SequenceCapacity c;
  c.ctx = ctx;
  c.block_tokens = f.block_tokens;
  c.block_bytes = f.block_bytes;
  c.budget_bytes = budget_bytes;
  c.blocks = f.blocks_in_budget(budget_bytes);
  c.pool_bytes = c.blocks * f.block_bytes;
  c.blocks_per_sequence = f.blocks_for_tokens(ctx);
  c.bytes_per_sequence = static_cast<std::size_t>(c.blocks_per_sequence) * f.block_bytes;
  c.sequences = static_cast<long long>(c.blocks) / c.blocks_per_sequence;
  // reserve() takes an int count of tokens: one sequence cannot go past it
  // however many blocks are free.
  const long long whole = static_cast<long long>(c.blocks) * f.block_tokens;
  c.longest_tokens = std::min<long long>(whole, std::numeric_limits<int>::max() / f.block_tokens *
                                                    static_cast<long long>(f.block_tokens));
  return c;
}

SequenceCapacity sequence_capacity(const ModelConfig& config, const CacheSpec& spec,
                                   long long ctx) {
  return sequence_capacity(cache_footprint(cache_shape(config), spec), spec.budget_bytes, ctx);
}

std::string describe(const SequenceCapacity& c) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "KV cache %s in %zu blocks of %d tokens (%s each): %lld sequence%s of %lld tokens "
                "fit at once (%s each); one sequence alone up to %lld tokens",
                format_bytes(static_cast<double>(c.pool_bytes)).c_str(), c.blocks, c.block_tokens,
                format_bytes(static_cast<double>(c.block_bytes)).c_str(), c.sequences,
                c.sequences == 1 ? "" : "s", c.ctx,
                format_bytes(static_cast<double>(c.bytes_per_sequence)).c_str(), c.longest_tokens);
  return buf;
}

}  // namespace thinkeys

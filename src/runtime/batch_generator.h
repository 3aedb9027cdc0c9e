#pragma once
// Generation for several prompts at once over the paged KV cache: up to
// max_batch sequences decode together; a sequence leaves the batch when it
// ends (EOS or its token limit) and the next waiting prompt joins.
#include <cstdint>
#include <span>
#include <vector>

#include "cache/paged_kv_cache.h"
#include "runtime/generator.h"

namespace thinkeys {

struct BatchGenerateOptions {
  GenerateOptions generate;  // per sequence; the seed is offset by the prompt's index
  CacheSpec cache;
  int threads = 1;
  int max_batch = 8;
};

struct BatchGenerateStats {
  int prompts = 0;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  int steps = 0;  // batched decode steps
  double prefill_seconds = 0, decode_seconds = 0;
  std::size_t peak_cache_bytes = 0;  // blocks in use at the fullest moment
  std::size_t cache_capacity_bytes = 0;
  double cache_bytes_per_token = 0;
};

// Returns the new tokens of each prompt, in prompt order.
std::vector<std::vector<int32_t>> generate_batch(const Model& model,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 const BatchGenerateOptions& options,
                                                 BatchGenerateStats* stats = nullptr);

}  // namespace thinkeys

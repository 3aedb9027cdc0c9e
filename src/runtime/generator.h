#pragma once
// Autoregressive generation: prefill the prompt, then decode token by token.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cache/paged_kv_cache.h"
#include "config/model_config.h"
#include "runtime/sampler.h"

namespace thinkeys {

struct Model;  // model/weights.h: taken by reference only

struct GenerateOptions {
  int max_new_tokens = 256;
  SamplingParams sampling;
  // Stop at EOS, and at BOS (llama2.c-trained models emit BOS between documents).
  bool stop_at_end_of_text = true;
  // When not empty, these ids end generation instead (the tokenizer's
  // conventions: every eos_token_id of generation_config.json).
  std::vector<int32_t> stop_ids;
  // Every model decodes through BatchDecoder over a paged cache of this
  // layout (its budget is sized to the prompt plus max_new_tokens); dense =
  // true uses the dense forward pass and an f32 cache instead.
  CacheSpec cache;
  bool dense = false;
  int threads = 0;  // decode threads; 0: compute_threads()
};

struct GenerateStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Whether `token` ends generation under `options` (stop_ids, else the model's EOS/BOS).
bool ends_text(const ModelConfig& c, const GenerateOptions& options, int32_t token);

// Calls on_token for each new token as soon as it is chosen; returns the new tokens.
std::vector<int32_t> generate(const Model& model, std::span<const int32_t> prompt,
                              const GenerateOptions& options,
                              const std::function<void(int32_t)>& on_token = {},
                              GenerateStats* stats = nullptr);

}  // namespace thinkeys

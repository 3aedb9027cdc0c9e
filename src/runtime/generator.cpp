#include "runtime/generator.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "config/cache_layout.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "runtime/batch_decoder.h"
#include "util/error.h"
#include "util/threads.h"

namespace thinkeys {

bool ends_text(const ModelConfig& c, const GenerateOptions& options, int32_t token) {
  if (!options.stop_ids.empty()) {
    return std::find(options.stop_ids.begin(), options.stop_ids.end(), token) !=
           options.stop_ids.end();
  }
  return (c.eos_id && token == *c.eos_id) || (c.bos_id && token == *c.bos_id);
}

std::vector<int32_t> generate(const Model& model, std::span<const int32_t> prompt,
                              const GenerateOptions& options,
                              const std::function<void(int32_t)>& on_token, GenerateStats* stats) {
  const ModelConfig& c = model.config;
  if (prompt.empty()) throw Error("generate: the prompt has no tokens (and the model has no BOS)");
  if (options.max_new_tokens < 0) throw Error("number of tokens to generate must be >= 0");
  int capacity = static_cast<int>(prompt.size()) + options.max_new_tokens;
  if (c.positions == PositionKind::Learned && capacity > c.max_positions) {
    if (static_cast<int>(prompt.size()) >= c.max_positions)
      throw Error("prompt of " + std::to_string(prompt.size()) +
                  " tokens does not fit the model's " + std::to_string(c.max_positions) +
                  " positions");
    capacity = c.max_positions;
  }
  Sampler sampler(options.sampling);
  const bool paged = !options.dense;
  std::unique_ptr<KVCache> cache;
  std::unique_ptr<BatchDecoder> decoder;
  int id = -1;
  if (paged) {
    BatchDecoderOptions d{options.cache, options.threads > 0 ? options.threads : compute_threads()};
    CacheSpec probe_spec = d.cache;
    probe_spec.budget_bytes = std::size_t{1} << 24;  // address space only: pages come on write
    const PagedKVCache probe(cache_shape(c), probe_spec);
    const std::size_t blocks =
        (static_cast<std::size_t>(capacity) + d.cache.block_tokens - 1) / d.cache.block_tokens;
    d.cache.budget_bytes = probe.block_bytes() * (blocks + 1);
    decoder = std::make_unique<BatchDecoder>(model, d);
  } else {
    cache = std::make_unique<KVCache>(c, capacity);
  }
  std::vector<int32_t> out;
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  std::vector<float> held;  // the prompt's logits, and every dense step's
  std::span<const float> logits;
  auto dense_step = [&](std::span<const int32_t> tokens) {
    const at::Tensor row = forward(model, tokens, *cache, Logits::Last)[0].contiguous();
    held.assign(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    logits = held;
  };
  if (paged) {
    id = decoder->add(prompt, &held);
    logits = held;
  } else {
    dense_step(prompt);
  }
  auto t1 = clock::now();
  const int limit = capacity - static_cast<int>(prompt.size());
  for (int i = 0; i < limit; ++i) {
    int32_t next = sampler.sample(logits);
    if (options.stop_at_end_of_text && ends_text(c, options, next)) break;
    out.push_back(next);
    if (on_token) on_token(next);
    if (i + 1 == limit) break;
    if (paged)
      logits = decoder->step(std::span<const int>(&id, 1), std::span<const int32_t>(&out.back(), 1))
                   .row(0);
    else
      dense_step(std::span<const int32_t>(&out.back(), 1));
  }
  auto t2 = clock::now();
  if (stats) {
    stats->prompt_tokens = static_cast<int>(prompt.size());
    stats->generated_tokens = static_cast<int>(out.size());
    stats->prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
    stats->decode_seconds = std::chrono::duration<double>(t2 - t1).count();
  }
  return out;
}

}  // namespace thinkeys

#include "runtime/batch_generator.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "config/model_config.h"
#include "runtime/batch_decoder.h"
#include "runtime/sampler.h"
#include "util/error.h"

namespace thinkeys {

std::vector<std::vector<int32_t>> generate_batch(const Model& model,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 const BatchGenerateOptions& options,
                                                 BatchGenerateStats* stats) {
  if (options.max_batch < 1) throw Error("batch size must be at least 1");
  if (options.generate.max_new_tokens < 0) throw Error("number of tokens to generate must be >= 0");
  using clock = std::chrono::steady_clock;
  BatchDecoder dec(model, {options.cache, options.threads});
  const ModelConfig& c = dec.config();
  BatchGenerateStats st;
  st.prompts = static_cast<int>(prompts.size());
  st.cache_capacity_bytes = dec.cache().capacity_bytes();
  st.cache_bytes_per_token = dec.cache().bytes_per_token();

  struct Active {
    int index, id, limit;
    Sampler sampler;
    std::vector<float> logits;  // the next token's
  };
  std::vector<std::vector<int32_t>> out(prompts.size());
  std::vector<Active> active;
  std::size_t next_prompt = 0;
  auto admit = [&] {
    while (static_cast<int>(active.size()) < options.max_batch && next_prompt < prompts.size()) {
      const int index = static_cast<int>(next_prompt++);
      const auto& p = prompts[index];
      if (p.empty()) throw Error("prompt " + std::to_string(index) + " has no tokens");
      int limit = options.generate.max_new_tokens;
      if (c.positions == PositionKind::Learned) {
        if (static_cast<int>(p.size()) >= c.max_positions)
          throw Error("prompt " + std::to_string(index) + " does not fit the model's " +
                      std::to_string(c.max_positions) + " positions");
        limit = std::min(limit, c.max_positions - static_cast<int>(p.size()));
      }
      SamplingParams sp = options.generate.sampling;
      sp.seed += static_cast<uint64_t>(index);
      const auto t0 = clock::now();
      std::vector<float> logits;
      const int id = dec.add(p, &logits);
      st.prefill_seconds += std::chrono::duration<double>(clock::now() - t0).count();
      st.prompt_tokens += static_cast<int>(p.size());
      active.push_back({index, id, limit, Sampler(sp), std::move(logits)});
    }
  };

  admit();
  std::vector<int> ids;
  std::vector<int32_t> tokens;
  while (!active.empty()) {
    // Choose each sequence's next token; retire the ones that end.
    ids.clear();
    tokens.clear();
    for (std::size_t i = 0; i < active.size();) {
      Active& a = active[i];
      bool done = static_cast<int>(out[a.index].size()) >= a.limit;
      if (!done) {
        const int32_t t = a.sampler.sample(a.logits);
        done = options.generate.stop_at_end_of_text && ends_text(c, options.generate, t);
        if (!done) {
          out[a.index].push_back(t);
          ++st.generated_tokens;
          done = static_cast<int>(out[a.index].size()) >= a.limit;
          if (!done) {
            ids.push_back(a.id);
            tokens.push_back(t);
          }
        }
      }
      if (done) {
        dec.remove(a.id);
        active.erase(active.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    st.peak_cache_bytes = std::max(st.peak_cache_bytes, dec.cache().used_bytes());
    if (!ids.empty()) {
      const auto t0 = clock::now();
      const LogitRows logits = dec.step(ids, tokens);
      st.decode_seconds += std::chrono::duration<double>(clock::now() - t0).count();
      ++st.steps;
      // Active entries that stepped are, in order, exactly those in ids.
      for (std::size_t i = 0, j = 0; i < active.size(); ++i)
        if (j < ids.size() && active[i].id == ids[j]) {
          const std::span<const float> row = logits.row(static_cast<int>(j++));
          active[i].logits.assign(row.begin(), row.end());  // same size: no allocation
        }
      st.peak_cache_bytes = std::max(st.peak_cache_bytes, dec.cache().used_bytes());
    }
    admit();
  }
  if (stats) *stats = st;
  return out;
}

}  // namespace thinkeys

#include <algorithm>
#include <cstdio>

#include "checkpoint/loaded_model.h"
#include "cli/cache_options.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shared_options.h"
#include "runtime/batch_generator.h"
#include "runtime/generator.h"

namespace thinkeys::cli {

namespace {

// Several prompts decoded together; each finished text is printed whole, in
// prompt order, since the streams interleave.
void run_batched(const Model& m, const ModelTokenizer& mt, std::vector<std::string> texts,
                 int bos_mode, const BatchGenerateOptions& options, bool quiet) {
  if (texts.empty()) texts.push_back("");
  std::vector<std::vector<int32_t>> prompts;
  const Tokenizer& tok = *mt.tokenizer;
  for (const auto& t : texts) prompts.push_back(prompt_tokens(m, mt, t, bos_mode));
  BatchGenerateStats st;
  auto outs = generate_batch(m, prompts, options, &st);
  for (std::size_t i = 0; i < outs.size(); ++i) {
    std::string text = texts[i];
    int32_t prev = prompts[i].back();
    for (int32_t id : outs[i]) {
      text += tok.decode_next(prev, id);
      prev = id;
    }
    if (texts.size() > 1) std::printf("--- [%zu]\n", i);
    std::printf("%s\n", text.c_str());
  }
  if (!quiet) {
    std::fprintf(stderr,
                 "%d prompts (%d tokens) prefilled in %.3f s; %d tokens in %d batched steps at "
                 "%.1f tokens/s\n",
                 st.prompts, st.prompt_tokens, st.prefill_seconds, st.generated_tokens, st.steps,
                 st.decode_seconds > 0 ? st.generated_tokens / st.decode_seconds : 0.0);
    std::fprintf(stderr,
                 "paged cache: K %s, V %s, %d tokens/block, %.1f bytes/token, peak %s of %s\n",
                 to_string(options.cache.key_dtype), to_string(options.cache.value_dtype),
                 options.cache.block_tokens, st.cache_bytes_per_token,
                 human_bytes(static_cast<double>(st.peak_cache_bytes)).c_str(),
                 human_bytes(static_cast<double>(st.cache_capacity_bytes)).c_str());
  }
}

}  // namespace

Command add_generate(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, weights = "stored";
    std::vector<std::string> prompts;
    bool paged = false;
    CacheOptions cache;
    int max_batch = 8;
    int n = 256;
    SamplingParams sampling;
    bool bos = false, no_bos = false, quiet = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("generate", "Generate text, streaming tokens as they are chosen");
  add_model_argument(sub, opts->model);
  sub->add_option("--prompt,-p", opts->prompts,
                  "Prompt text (default: empty, start from BOS); repeat for several prompts, which "
                  "then decode together over the paged KV cache");
  sub->add_flag("--paged", opts->paged,
                "Print one prompt's text when done instead of streaming it (one prompt "
                "decodes over the paged cache either way)");
  add_cache_options(sub, opts->cache);
  sub->add_option("--max-batch", opts->max_batch, "Sequences decoded together (others wait)")
      ->check(CLI::PositiveNumber);
  sub->add_option("-n,--tokens", opts->n, "Maximum new tokens")->check(CLI::NonNegativeNumber);
  add_sampling_options(sub, opts->sampling);
  add_tokenizer_option(sub, opts->tokenizer);
  sub->add_flag("--bos", opts->bos, "Always start with BOS");
  sub->add_flag("--no-bos", opts->no_bos, "Never add BOS");
  sub->add_flag("--quiet,-q", opts->quiet, "Do not print timing to stderr");
  add_weights_option(sub, opts->weights);
  return {sub, [opts] {
            const LoadedModel lm = load_model_handle(opts->model, weights_choice(opts->weights));
            const Model& m = lm.model();
            auto mt = model_tokenizer(opts->model, opts->tokenizer, &m);
            auto& tok = mt.tokenizer;
            int bos_mode = opts->bos ? 1 : opts->no_bos ? 0 : -1;
            if (opts->prompts.size() > 1 || opts->paged) {
              BatchGenerateOptions b;
              b.generate.max_new_tokens = opts->n;
              b.generate.sampling = opts->sampling;
              b.generate.stop_ids = mt.conventions.stop_ids;
              b.cache = cache_spec(opts->cache);
              b.max_batch = opts->max_batch;
              b.threads = attention_threads(opts->cache);
              run_batched(m, mt, opts->prompts, bos_mode, b, opts->quiet);
              return;
            }
            const std::string text = opts->prompts.empty() ? std::string() : opts->prompts[0];
            auto prompt = prompt_tokens(m, mt, text, bos_mode);
            GenerateOptions g;
            g.max_new_tokens = opts->n;
            g.sampling = opts->sampling;
            g.stop_ids = mt.conventions.stop_ids;
            // One prompt decodes through the same paged, fused path as several.
            g.cache = cache_spec(opts->cache);
            g.threads = attention_threads(opts->cache);
            std::fwrite(text.data(), 1, text.size(), stdout);
            std::fflush(stdout);
            int32_t prev = prompt.back();
            GenerateStats stats;
            generate(
                m, prompt, g,
                [&](int32_t id) {
                  std::string piece = tok->decode_next(prev, id);
                  std::fwrite(piece.data(), 1, piece.size(), stdout);
                  std::fflush(stdout);
                  prev = id;
                },
                &stats);
            std::printf("\n");
            if (!opts->quiet)
              std::fprintf(
                  stderr, "prompt %d tokens in %.3f s; generated %d tokens at %.1f tokens/s\n",
                  stats.prompt_tokens, stats.prefill_seconds, stats.generated_tokens,
                  stats.decode_seconds > 0 ? stats.generated_tokens / stats.decode_seconds : 0.0);
          }};
}

}  // namespace thinkeys::cli

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/cache_options.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "eval/paged_logits.h"
#include "eval/perplexity.h"
#include "checkpoint/model_loader.h"
#include "util/error.h"
#include "util/text_file.h"

namespace thinkeys::cli {

Command add_eval(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, data, reference;
    std::string weights = "stored";
    bool paged = false;
    CacheOptions cache;
    int ctx = 512, stride = 256;
    int64_t max_tokens = 0;
    bool json = false, no_bos = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("eval", "Sliding-window perplexity over a text file");
  sub->add_option("model", opts->model, "Model directory (Hugging Face) or llama2.c .bin")
      ->required();
  sub->add_option("--data", opts->data, "UTF-8 text file, scored as one document")->required();
  sub->add_option("--ctx", opts->ctx, "Window length in tokens");
  sub->add_option("--stride", opts->stride, "Window advance in tokens (<= ctx)");
  sub->add_option("--max-tokens", opts->max_tokens, "Score only the first N tokens of the file");
  sub->add_option("--tokenizer", opts->tokenizer,
                  "Tokenizer file or directory (default: beside the model)");
  sub->add_flag("--no-bos", opts->no_bos, "Do not prepend BOS to the document");
  sub->add_option("--reference", opts->reference,
                  "Original model: also report KL(original || model) and top-1 agreement");
  sub->add_flag("--paged", opts->paged,
                "Run every token after a window's first through the paged decode cache (the "
                "serving path), so the score reflects the cache dtypes");
  add_cache_options(sub, opts->cache, /*budget=*/false, "(implies --paged)");
  sub->add_flag("--json", opts->json, "Print JSON");
  add_weights_option(sub, opts->weights);  // the reference keeps its stored dtype
  return {sub, [opts, sub] {
            const bool paged = opts->paged || cache_dtype_given(sub);
            BatchDecoderOptions bo;
            if (paged) {
              bo.cache = cache_spec(opts->cache);
              bo.threads = attention_threads(opts->cache);
            }
            PerplexityOptions po{opts->ctx, opts->stride, !opts->json};
            po.validate();  // before the (possibly slow) load
            std::string text = read_file_bytes(opts->data);
            if (text.empty()) throw Error("data file " + opts->data + " is empty");
            Model m = load_model(opts->model, weights_choice(opts->weights));
            auto mt = model_tokenizer(opts->model, opts->tokenizer, &m);
            auto tokens = prompt_tokens(m, mt, text, opts->no_bos ? 0 : -1);
            if (opts->max_tokens > 0 && static_cast<int64_t>(tokens.size()) > opts->max_tokens)
              tokens.resize(static_cast<size_t>(opts->max_tokens));
            std::optional<Model> ref;
            if (!opts->reference.empty()) ref = load_model(opts->reference, std::nullopt);
            if (paged) {
              // One window at a time: its blocks are all the pool ever holds.
              const int64_t row = static_cast<int64_t>(m.config.kv_bytes_per_token(4, 4));
              bo.cache.budget_bytes = static_cast<std::size_t>(
                  row * (po.ctx + 2 * opts->cache.block_tokens) * 2 + (1 << 20));
            }
            auto r = evaluate_perplexity(m, tokens, po, {}, ref ? &*ref : nullptr,
                                         paged ? paged_window_logits(m, bo) : WindowLogits{});
            if (opts->json) {
              nlohmann::json j = {
                  {"model", opts->model},
                  {"data", opts->data},
                  {"cache", paged ? nlohmann::json{{"key_dtype", opts->cache.key_dtype},
                                                   {"value_dtype", opts->cache.value_dtype},
                                                   {"key_rotation", !opts->cache.no_key_rotation},
                                                   {"block_tokens", opts->cache.block_tokens}}
                                  : nlohmann::json("dense f32")},
                  {"ctx", po.ctx},
                  {"stride", po.stride},
                  {"tokens", r.tokens_total},
                  {"tokens_scored", r.tokens_scored},
                  {"windows", r.windows},
                  {"mean_nll", r.mean_nll},
                  {"perplexity", r.perplexity},
                  {"seconds", r.seconds},
                  {"tokens_per_second", r.tokens_per_second}};
              if (r.has_reference) {
                j["reference"] = opts->reference;
                j["kl_mean"] = r.kl_mean;
                j["top1_agreement"] = r.top1_agreement;
                j["reference_perplexity"] = std::exp(r.reference_nll);
              }
              std::printf("%s\n", j.dump(2).c_str());
              return;
            }
            std::printf("data          %s (%lld tokens)\n", opts->data.c_str(),
                        static_cast<long long>(r.tokens_total));
            if (paged)
              std::printf("cache         paged, K %s, V %s, %d tokens/block\n",
                          opts->cache.key_dtype.c_str(), opts->cache.value_dtype.c_str(),
                          opts->cache.block_tokens);
            std::printf("windows       %lld (ctx %d, stride %d)\n",
                        static_cast<long long>(r.windows), po.ctx, po.stride);
            std::printf("tokens scored %lld\n", static_cast<long long>(r.tokens_scored));
            std::printf("mean NLL      %.4f nats/token\n", r.mean_nll);
            std::printf("perplexity    %.4f\n", r.perplexity);
            if (r.has_reference) {
              std::printf("reference     %s: perplexity %.4f\n", opts->reference.c_str(),
                          std::exp(r.reference_nll));
              std::printf("KL(ref||this) %.5f nats/token\n", r.kl_mean);
              std::printf("top-1 agree   %.2f%%\n", 100.0 * r.top1_agreement);
            }
            std::printf("speed         %.0f tokens/s (%.1f s)\n", r.tokens_per_second, r.seconds);
          }};
}

}  // namespace thinkeys::cli

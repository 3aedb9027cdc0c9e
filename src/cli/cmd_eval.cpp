#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/paged_logits.h"
#include "eval/perplexity.h"
#include "io/model_loader.h"
#include "util/error.h"
#include "util/text_file.h"

namespace thinkeys::cli {

Command add_eval(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, data, reference, cache_k = "f16", cache_v = "f16";
    std::string weights = "stored";
    bool paged = false;
    bool no_key_rotation = false;
    int block_tokens = 64, threads = 0;
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
  sub->add_option("--cache-k", opts->cache_k,
                  "Paged cache key dtype: f32, f16, bf16, int8, int4 (implies --paged)");
  sub->add_option("--cache-v", opts->cache_v,
                  "Paged cache value dtype: f32, f16, bf16, int8, int4 (implies --paged)");
  sub->add_flag("--no-key-rotation", opts->no_key_rotation,
                "Store int8/int4 keys as they are instead of Hadamard-rotated (rotation "
                "spreads an outlier channel over the row before the group scale is taken)");
  sub->add_option("--block-tokens", opts->block_tokens, "Paged cache tokens per block")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--threads", opts->threads, "Paged attention threads (default: all cores)");
  sub->add_flag("--json", opts->json, "Print JSON");
  add_weights_option(sub, opts->weights);  // the reference keeps its stored dtype
  return {sub, [opts, sub] {
            const bool paged =
                opts->paged || sub->count("--cache-k") > 0 || sub->count("--cache-v") > 0;
            BatchDecoderOptions bo;
            if (paged) {
              bo.cache.key_dtype = parse_cache_dtype(opts->cache_k);
              bo.cache.value_dtype = parse_cache_dtype(opts->cache_v);
              bo.cache.rotate_keys = !opts->no_key_rotation;
              bo.cache.block_tokens = opts->block_tokens;
              bo.threads =
                  opts->threads > 0
                      ? opts->threads
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            }
            PerplexityOptions po{opts->ctx, opts->stride, !opts->json};
            po.validate();  // before the (possibly slow) load
            std::string text = read_file_bytes(opts->data);
            if (text.empty()) throw Error("data file " + opts->data + " is empty");
            Model m = load_model(opts->model, weights_choice(opts->weights));
            auto tok = tokenizer_for(opts->model, opts->tokenizer, m);
            auto tokens = prompt_tokens(m, *tok, text, opts->no_bos ? 0 : -1);
            if (opts->max_tokens > 0 && static_cast<int64_t>(tokens.size()) > opts->max_tokens)
              tokens.resize(static_cast<size_t>(opts->max_tokens));
            std::optional<Model> ref;
            if (!opts->reference.empty()) ref = load_model(opts->reference, std::nullopt);
            if (paged) {
              // One window at a time: its blocks are all the pool ever holds.
              const int64_t row = static_cast<int64_t>(m.config.kv_bytes_per_token(4, 4));
              bo.cache.budget_bytes =
                  static_cast<std::size_t>(row * (po.ctx + 2 * opts->block_tokens) * 2 + (1 << 20));
            }
            auto r = evaluate_perplexity(m, tokens, po, {}, ref ? &*ref : nullptr,
                                         paged ? paged_window_logits(m, bo) : WindowLogits{});
            if (opts->json) {
              nlohmann::json j = {
                  {"model", opts->model},
                  {"data", opts->data},
                  {"cache", paged ? nlohmann::json{{"key_dtype", opts->cache_k},
                                                   {"value_dtype", opts->cache_v},
                                                   {"key_rotation", !opts->no_key_rotation},
                                                   {"block_tokens", opts->block_tokens}}
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
                          opts->cache_k.c_str(), opts->cache_v.c_str(), opts->block_tokens);
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

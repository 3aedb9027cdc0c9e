#include <cstdio>
#include <nlohmann/json.hpp>

#include "cache/cache_footprint.h"
#include "checkpoint/loaded_model.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shared_options.h"
#include "config/cache_layout.h"
#include "model/dense_cache_bytes.h"
#include "util/error.h"

namespace thinkeys::cli {

Command add_info(CLI::App& app) {
  struct Opts {
    std::string model, weights = "stored";
    int ctx = 0;
    bool json = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("info", "Architecture, parameters and KV-cache size of a model");
  add_model_argument(sub, opts->model);
  sub->add_option("--ctx", opts->ctx,
                  "Context length for the cache total (default: the model's maximum)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--json", opts->json, "Print JSON");
  add_weights_option(sub, opts->weights);
  return {
      sub, [opts] {
        const LoadedModel lm = load_model_handle(opts->model, weights_choice(opts->weights));
        const char* held = weight_format_name(lm.weight_format());
        const ModelConfig& c = lm.config();
        const int ctx = opts->ctx > 0 ? opts->ctx : c.max_positions;
        // Per-token bytes come from a real one-token allocation of the runtime cache.
        const int64_t per_token = dense_cache_bytes_per_token(c);
        std::vector<int64_t> per_layer;
        for (int l = 0; l < c.n_layers; ++l)
          per_layer.push_back(c.kv_bytes_per_token_layer(l, 4, 4));
        const int64_t f16_per_token = c.kv_bytes_per_token(2, 2);
        // The same model with full-width keys, also measured from an allocation.
        ModelConfig full = c;
        full.thin_keys.reset();
        full.key_rank.clear();
        full.rope_planes.clear();
        full.attention = AttentionVariant{};  // MLA/LRKV against MHA of the same heads
        const int64_t full_per_token = dense_cache_bytes_per_token(full);
        // Paged decode cache: bytes per token from the block layout the pool
        // really uses (quantization scales and block alignment included).
        struct PagedRow {
          CacheDType k, v;
          std::size_t payload = 0;
          double pool = 0;
        };
        std::vector<PagedRow> paged = {{CacheDType::F16, CacheDType::F16},
                                       {CacheDType::Int8, CacheDType::F16},
                                       {CacheDType::Int4, CacheDType::F16},
                                       {CacheDType::Int4, CacheDType::Int8}};
        if (c.is_mla())  // its values read the cached latent in place: float keys only
          std::erase_if(paged, [](const PagedRow& p) { return is_quantized(p.k); });
        for (auto& p : paged) {
          // The block layout the cache would use, without allocating one.
          const CacheFootprint f = cache_footprint(
              cache_shape(c), CacheSpec{p.k, p.v, kDefaultQuantGroup, CacheSpec{}.block_tokens});
          p.payload = f.payload_bytes_per_token();
          p.pool = f.bytes_per_token();
        }
        // The tokenizer's conventions; a model without a tokenizer beside it
        // still gets its architecture report.
        std::optional<ModelTokenizer> mt;
        std::string tokenizer_error;
        try {
          mt = model_tokenizer(opts->model, "", &lm.model());
        } catch (const Error& e) {
          tokenizer_error = e.what();
        }
        if (opts->json) {
          nlohmann::json j = {
              {"architecture", c.architecture},
              {"model_type", c.model_type},
              {"source_format", c.source_format},
              {"weight_dtype", c.weight_dtype},
              {"parameters", lm.parameter_count()},
              {"weights_held_as", held},
              {"weight_bytes_resident", lm.resident_bytes()},
              {"weight_bytes_per_decode_step", lm.weight_bytes()},
              {"vocab_size", c.vocab_size},
              {"hidden_size", c.dim},
              {"layers", c.n_layers},
              {"heads", c.n_heads},
              {"kv_heads", c.n_kv_heads},
              {"head_dim", c.head_dim},
              {"intermediate_size", c.hidden_dim},
              {"max_positions", c.max_positions},
              {"positions", to_string(c.positions)},
              {"rope_theta",
               c.positions == PositionKind::Rope ? nlohmann::json(c.rope_theta) : nlohmann::json()},
              {"thin_key_rope_table", to_string(c.rope_table)},
              {"key_rank",
               c.key_rank.empty() ? std::vector<int>(c.n_layers, c.head_dim) : c.key_rank},
              {"kv_cache_dtype", "float32"},
              {"kv_bytes_per_token", per_token},
              {"kv_bytes_per_token_per_layer", per_layer},
              {"kv_bytes_per_token_f16", f16_per_token},
              {"kv_bytes_per_token_uncompressed", full_per_token},
              {"key_heads", c.cache_key_heads(0)},
              {"attention", c.is_mla() ? nlohmann::json{{"kind", "mla"},
                                                        {"kv_lora_rank", c.attention.latent},
                                                        {"qk_rope_head_dim", c.attention.rope_dim},
                                                        {"qk_nope_head_dim", c.attention.nope_dim}}
                            : c.is_lrkv()
                                ? nlohmann::json{{"kind", "lrkv"}, {"rank", c.attention.rank}}
                                : nlohmann::json{{"kind", "standard"}}},
              {"thin_keys", c.thin_keys
                                ? nlohmann::json{{"method", c.thin_keys->method},
                                                 {"target", c.thin_keys->target},
                                                 {"rope_mode", to_string(c.thin_keys->rope)},
                                                 {"share", c.thin_keys->share}}
                                : nlohmann::json()},
              {"ctx", ctx},
              {"kv_bytes_at_ctx", per_token * ctx},
              {"paged_cache", nlohmann::json::array()},
          };
          for (const auto& p : paged)
            j["paged_cache"].push_back({{"key_dtype", to_string(p.k)},
                                        {"value_dtype", to_string(p.v)},
                                        {"quant_group", kDefaultQuantGroup},
                                        {"block_tokens", CacheSpec{}.block_tokens},
                                        {"scale", "f16"},
                                        {"payload_bytes_per_token", p.payload},
                                        {"pool_bytes_per_token", p.pool},
                                        {"pool_bytes_at_ctx", p.pool * ctx}});
          if (mt) {
            j["tokenizer"] = mt->conventions.to_json();
            j["tokenizer"]["format"] = mt->tokenizer->describe();
          } else {
            j["tokenizer"] = {{"error", tokenizer_error}};
          }
          std::printf("%s\n", j.dump(2).c_str());
          return;
        }
        std::printf("model         %s\n", opts->model.c_str());
        std::printf("architecture  %s (%s, loaded from %s, weights %s)\n", c.architecture.c_str(),
                    c.model_type.c_str(), c.source_format.c_str(), c.weight_dtype.c_str());
        std::printf("parameters    %lld\n", static_cast<long long>(lm.parameter_count()));
        std::printf("weights       held as %s: %s resident, %s read per decode step\n", held,
                    human_bytes(static_cast<double>(lm.resident_bytes())).c_str(),
                    human_bytes(static_cast<double>(lm.weight_bytes())).c_str());
        std::printf(
            "shape         %d layers, width %d, %d heads, %d KV heads (group %d), head dim %d, MLP "
            "%d\n",
            c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.group_size(), c.head_dim, c.hidden_dim);
        std::printf("vocab         %d\n", c.vocab_size);
        std::printf("blocks        %s, %s, %s", to_string(c.norm), to_string(c.mlp),
                    to_string(c.positions));
        if (c.positions == PositionKind::Rope)
          std::printf(" (theta %g, rotate-half pairs)", c.rope_theta);
        std::printf("\n");
        if (c.sliding_window) std::printf("window        %d tokens\n", *c.sliding_window);
        std::printf("embeddings    %s\n", c.tied_embeddings ? "tied" : "separate head");
        std::printf("max context   %d\n", c.max_positions);
        if (mt) {
          const TokenizerConventions& tc = mt->conventions;
          std::printf("tokenizer     %s\n", mt->tokenizer->describe().c_str());
          std::printf("  BOS         %s%s (%s)\n", tc.add_bos ? "added: " : "not added",
                      tc.add_bos ? nlohmann::json(tc.bos_token).dump().c_str() : "",
                      tc.bos_rule.c_str());
          std::printf("  stop ids   ");
          for (int32_t id : tc.stop_ids) std::printf(" %d", id);
          std::printf("%s\n", tc.eos_token.empty()
                                  ? ""
                                  : (" (EOS " + nlohmann::json(tc.eos_token).dump() + ")").c_str());
          std::printf("  specials    %zu tokens known by name\n", tc.special_tokens.size());
          std::printf("  chat        %s\n",
                      tc.chat_template ? ("template from " + tc.chat_template_origin).c_str()
                                       : "no template (use --chat-template NAME|FILE)");
          for (const std::string& f : tc.files) std::printf("  read        %s\n", f.c_str());
        } else {
          std::printf("tokenizer     none: %s\n", tokenizer_error.c_str());
        }
        if (c.thin_keys)
          std::printf("thin keys     %s on %s, RoPE mode %s, %d KV head(s) per key latent\n",
                      c.thin_keys->method.c_str(), c.thin_keys->target.c_str(),
                      to_string(c.thin_keys->rope), c.thin_keys->share);
        if (c.rope_table == RopeTable::KeyWidth)
          std::printf("thin key RoPE own table over the key width (theta^(-2i/r))\n");
        if (c.is_mla())
          std::printf(
              "attention     MLA: cached latent %d + shared RoPE key %d per token; per-head "
              "query/key %d (+%d RoPE), values %d\n",
              c.attention.latent, c.attention.rope_dim, c.attention.nope_dim, c.attention.rope_dim,
              c.head_dim);
        if (c.is_lrkv())
          std::printf(
              "attention     LRKV: shared key/value head of %d plus rank-%d residuals per "
              "head (RoPE on the shared key)\n",
              c.head_dim, c.attention.rank);
        std::printf(
            "dense KV cache (the reference forward pass and eval's window scoring; f32, "
            "measured from the allocation):\n");
        for (int l = 0; l < c.n_layers; ++l)
          std::printf("  layer %-3d   K %d x %d + V %d x %d per token = %lld B\n", l,
                      c.cache_key_heads(l), c.cache_key_width(l), c.cache_value_heads(),
                      c.cache_value_width(), static_cast<long long>(per_layer[l]));
        std::printf("  per token   %lld B (%s); as f16 it would be %lld B\n",
                    static_cast<long long>(per_token),
                    human_bytes(static_cast<double>(per_token)).c_str(),
                    static_cast<long long>(f16_per_token));
        if (full_per_token != per_token)
          std::printf(
              c.is_standard_attention()
                  ? "  full keys   %lld B per token: this cache is %.1f%% smaller\n"
                  : "  MHA         %lld B per token with the same heads: this cache is %.1f%% "
                    "smaller\n",
              static_cast<long long>(full_per_token),
              100.0 * (1.0 - static_cast<double>(per_token) / static_cast<double>(full_per_token)));
        std::printf("  at ctx %d  %s (f32), %s (f16)\n", ctx,
                    human_bytes(static_cast<double>(per_token) * ctx).c_str(),
                    human_bytes(static_cast<double>(f16_per_token) * ctx).c_str());
        std::printf(
            "paged decode cache (%d tokens/block; int8/int4: one f16 scale per %d values or per "
            "narrower row, keys of power-of-two width Hadamard-rotated):\n",
            CacheSpec{}.block_tokens, kDefaultQuantGroup);
        for (const auto& p : paged)
          std::printf(
              "  K %-4s V %-4s %8zu B/token payload, %8.1f B/token in the pool, %s at ctx %d\n",
              to_string(p.k), to_string(p.v), p.payload, p.pool, human_bytes(p.pool * ctx).c_str(),
              ctx);
      }};
}

}  // namespace thinkeys::cli

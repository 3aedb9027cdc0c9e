#include <cstdio>
#include <nlohmann/json.hpp>

#include "checkpoint/hf_checkpoint.h"
#include "checkpoint/model_loader.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shared_options.h"
#include "compress/compressor.h"
#include "util/error.h"
#include "util/text_file.h"

namespace thinkeys::cli {
namespace {

int parse_share(const std::string& s, const ModelConfig& c) {
  if (s == "head") return 1;
  if (s == "layer") return c.n_kv_heads;
  if (s.rfind("group:", 0) == 0) {
    try {
      size_t used = 0;
      int g = std::stoi(s.substr(6), &used);
      if (used == s.size() - 6 && g >= 1) return g;
    } catch (const std::exception&) {
    }
  }
  throw Error("--share must be head, layer or group:G (got '" + s + "')");
}

}  // namespace

Command add_compress(CLI::App& app) {
  struct Opts {
    std::string model, out, method = "kqsvd", rope, share = "head", target = "keys", calib,
                            tokenizer, dtype = "stored";
    CompressOptions c;
    bool json = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("compress", "Compress a model's keys into a thinner KV cache");
  add_model_argument(sub, opts->model);
  sub->add_option("-o,--out", opts->out, "Output model directory (written atomically)")->required();
  auto* method =
      sub->add_option("--method", opts->method,
                      "svd (weights only), kqsvd (calibrated on keys and queries) or keypca "
                      "(calibrated on keys only: their principal directions)");
  sub->add_option("--rope", opts->rope, "RoPE models: post, latent or pairs");
  sub->add_option("--key-rank", opts->c.ranks.key_rank, "Key dimensions per key head");
  sub->add_option("--key-ratio", opts->c.ranks.key_ratio,
                  "Key width as a fraction of the original");
  sub->add_option("--energy", opts->c.ranks.energy, "Per-layer rank: discarded energy <= E^2");
  sub->add_option("--key-budget", opts->c.ranks.key_budget,
                  "Global fraction of key bytes, allocated greedily across layers");
  sub->add_option("--share", opts->share,
                  "One key space per head (default), per group:G KV heads, or per layer");
  sub->add_option("--target", opts->target,
                  "keys (default) or queries (truncate W_Q; cache unchanged)");
  sub->add_option("--calib", opts->calib, "Calibration text (kqsvd, keypca)");
  sub->add_option("--calib-tokens", opts->c.calibration.tokens, "Calibration tokens")
      ->check(CLI::PositiveNumber);
  sub->add_option("--calib-ctx", opts->c.calibration.ctx,
                  "Calibration window (use the deployment context)")
      ->check(CLI::PositiveNumber);
  add_tokenizer_option(sub, opts->tokenizer);
  sub->add_option("--dtype", opts->dtype,
                  "Saved weight dtype: stored (the input model's, default), f32, f16 or bf16")
      ->check(CLI::IsMember({"stored", "f32", "f16", "bf16"}));
  sub->add_flag("--json", opts->json, "Print JSON");
  return {
      sub, [opts, method] {
        CompressOptions co = opts->c;
        co.method = parse_compress_method(opts->method);
        co.target = parse_compress_target(opts->target);
        // Queries are truncated from W_Q alone; a calibrated method named for
        // them would otherwise be ignored without a word.
        if (co.target == CompressTarget::Queries) {
          if (method->count() > 0 && co.method != CompressMethod::Svd)
            throw Error("--target queries truncates W_Q by its weight SVD only; --method " +
                        opts->method + " applies to keys (use --method svd or leave it out)");
          co.method = CompressMethod::Svd;
        }
        Model m = load_model(opts->model);
        co.share = parse_share(opts->share, m.config);
        if (!opts->rope.empty()) co.rope = parse_rope_mode(opts->rope);
        co.calibration.show_progress = !opts->json;
        std::vector<int32_t> calib;
        if (!opts->calib.empty()) {
          std::string text = read_file_bytes(opts->calib);
          if (text.empty()) throw Error("calibration file " + opts->calib + " is empty");
          auto mt = model_tokenizer(opts->model, opts->tokenizer, &m);
          calib = prompt_tokens(
              m, mt, text.substr(0, static_cast<size_t>(co.calibration.tokens) * 16), -1);
        }
        CompressReport rep;
        Model out = compress_model(m, co, calib, &rep);
        save_model(out, opts->out, dtype_for_saving(opts->dtype, m.config), opts->model);
        const int64_t before = m.config.kv_bytes_per_token(2, 2),
                      after = out.config.kv_bytes_per_token(2, 2);
        const int64_t kb = m.config.kv_bytes_per_token(2, 0),
                      ka = out.config.kv_bytes_per_token(2, 0);
        if (opts->json) {
          nlohmann::json j = {
              {"out", opts->out},
              {"method", to_string(co.method)},
              {"target", to_string(co.target)},
              {"rope", out.config.thin_keys ? to_string(out.config.thin_keys->rope) : "full"},
              {"share", co.share},
              {"ranks", rep.ranks},
              {"discarded_energy", rep.discarded_energy},
              {"calibration_tokens", rep.calibration_tokens},
              {"seconds", rep.seconds},
              {"kv_bytes_per_token_f16_before", before},
              {"kv_bytes_per_token_f16_after", after}};
          std::printf("%s\n", j.dump(2).c_str());
          return;
        }
        std::printf("compressed %s -> %s in %.2f s (%s, target %s, share %d", opts->model.c_str(),
                    opts->out.c_str(), rep.seconds, to_string(co.method), to_string(co.target),
                    co.share);
        if (out.config.thin_keys && co.target == CompressTarget::Keys)
          std::printf(", RoPE %s", to_string(out.config.thin_keys->rope));
        std::printf(", %lld calibration tokens)\n", static_cast<long long>(rep.calibration_tokens));
        for (size_t l = 0; l < rep.ranks.size(); ++l)
          std::printf("  layer %-3zu rank %-4d discarded energy %.4f\n", l, rep.ranks[l],
                      l < rep.discarded_energy.size() ? rep.discarded_energy[l] : 0.0);
        std::printf(
            "KV bytes/token at f16: keys %lld -> %lld, keys+values %lld -> %lld (%.1f%% saved)\n",
            static_cast<long long>(kb), static_cast<long long>(ka), static_cast<long long>(before),
            static_cast<long long>(after), 100.0 * (1.0 - double(after) / double(before)));
      }};
}

}  // namespace thinkeys::cli

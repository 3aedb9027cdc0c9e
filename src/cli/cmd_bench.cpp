#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "bench/bandwidth_probe.h"
#include "bench/gemm_probe.h"
#include "bench/runtime_bench.h"
#include "checkpoint/model_loader.h"
#include "cli/bench_decode.h"
#include "cli/bench_model_decode.h"
#include "cli/bench_prefill.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "compress/compressor.h"
#include "model/random_init.h"
#include "model/weight_format.h"
#include "util/error.h"
#include "util/shared_data.h"

namespace thinkeys::cli {

namespace {

// Seconds to compress every layer's keys of GPT-2-small's shape: weight SVD
// (data-free) and KQ-SVD including calibration on 2048 tokens.
void bench_compression(bool json) {
  Model m = random_model(gpt2_small_config(), 11);
  std::mt19937 rng(5);
  std::vector<int32_t> calib(2048);
  for (auto& t : calib) t = static_cast<int32_t>(rng() % 50257);
  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    std::printf("| method | key ratio | calibration tokens | seconds |\n|---|---:|---:|---:|\n");
  }
  for (const char* method : {"svd", "kqsvd"}) {
    CompressOptions o;
    o.method = parse_compress_method(method);
    o.ranks.key_ratio = 0.25;
    o.calibration.tokens = 2048;
    o.calibration.ctx = 512;
    o.calibration.show_progress = false;
    CompressReport rep;
    compress_model(m, o, calib, &rep);
    if (json)
      rows.push_back({{"method", method},
                      {"key_ratio", 0.25},
                      {"calibration_tokens", rep.calibration_tokens},
                      {"seconds", rep.seconds}});
    else
      std::printf("| %s | 1/4 | %lld | %.2f |\n", method,
                  static_cast<long long>(rep.calibration_tokens), rep.seconds);
  }
  if (json)
    std::printf(
        "%s\n",
        nlohmann::json{{"model", "gpt2-small-shaped (random)"}, {"rows", rows}}.dump(2).c_str());
}

// f32 GEMM rates at the configured BLAS threads: the denominator of a training
// run's model FLOP utilization (docs/results/training.md).
void bench_gemm(int repeats, bool json) {
  nlohmann::json rows = nlohmann::json::array();
  if (!json)
    std::printf("| m | k | n | best GFLOP/s | median GFLOP/s |\n|---:|---:|---:|---:|---:|\n");
  for (const GemmShape& s : default_gemm_shapes()) {
    GemmRate r = probe_gemm_rate(s, repeats);
    if (json)
      rows.push_back({{"m", s.m},
                      {"k", s.k},
                      {"n", s.n},
                      {"best_gflops", r.best_gflops},
                      {"median_gflops", r.median_gflops}});
    else
      std::printf("| %lld | %lld | %lld | %.1f | %.1f |\n", static_cast<long long>(s.m),
                  static_cast<long long>(s.k), static_cast<long long>(s.n), r.best_gflops,
                  r.median_gflops);
  }
  if (json) std::printf("%s\n", nlohmann::json{{"gemm", rows}}.dump(2).c_str());
}

}  // namespace

Command add_bench(CLI::App& app) {
  struct Opts {
    std::vector<std::string> models;
    int ctx = 1024, decode = 64, repeats = 3;
    bool json = false, compress = false, gemm = false;
    bool decode_sweep = false, quick = false, decode_model = false, prefill_model = false;
    PrefillCliOptions prefill;
    int decode_steps = 5;
    DecodeBenchOptions dec;
    std::vector<std::string> decode_weights = {"f32"};
    std::string weights = "stored";
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "bench",
      "Prefill/decode throughput against the weight-read bound (default models: stories260K "
      "from ../shared and a random GPT-2-small-shaped model)");
  sub->add_option("--model", opts->models, "Model(s) to benchmark instead of the defaults");
  sub->add_option("--ctx", opts->ctx, "Context length")->check(CLI::Range(2, 1 << 20));
  sub->add_option("--decode-tokens", opts->decode, "Decode steps measured (ending at ctx)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--repeats", opts->repeats, "Repeats (best is reported)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--json", opts->json, "Print JSON");
  sub->add_flag(
      "--compress", opts->compress,
      "Instead: time key compression of a random GPT-2-small-shaped model (12 layers, width 768)");
  sub->add_flag("--decode", opts->decode_sweep,
                "Instead: decode-attention sweep over the paged cache (contexts x batch x cache "
                "layouts x MHA/GQA shapes) beside the measured read bandwidth");
  sub->add_flag("--decode-model", opts->decode_model,
                "Instead: whole-model decode tokens/s (12 layers, width 768, GQA and MHA) over the "
                "paged cache at long contexts, synthetic cached prefix, full vs thin keys");
  sub->add_flag("--prefill-model", opts->prefill_model,
                "Instead: prefill tokens/s of the --decode-model shape (mha unless --decode-shape "
                "names one) in each of --prefill-weights, round-robin in one run");
  sub->add_option("--prefill-tokens", opts->prefill.tokens, "--prefill-model: prompt tokens")
      ->check(CLI::Range(1, 1 << 16));
  sub->add_option("--prefill-weights", opts->prefill.weights,
                  "--prefill-model: weight formats to compare (f32, bf16, f16, int8, int4; default "
                  "f32,bf16,int8)")
      ->delimiter(',');
  sub->add_option("--decode-ctx", opts->dec.ctx, "--decode/--decode-model: context lengths")
      ->delimiter(',')
      ->check(CLI::Range(1, 1 << 24));
  sub->add_option("--decode-batch", opts->dec.batch, "--decode/--decode-model: batch sizes")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024));
  sub->add_option("--decode-cache", opts->dec.caches,
                  "--decode/--decode-model: cache layouts (full-f16, thin-f16, thin-int8, "
                  "thin-int4; full-f16-bytoken, thin-f16-bytoken: f16 keys stored token by "
                  "token, as full-f16 already is for the mha shapes; --decode only: "
                  "thin-int8-bytoken, thin-int4-bytoken, latent-f16, latent-int8, and r24-f16, "
                  "r24-f16-bytoken: 24-wide keys)")
      ->delimiter(',');
  add_weights_option(sub, opts->weights);
  sub->add_option("--decode-weights", opts->decode_weights,
                  "--decode-model: weight formats to compare (f32, bf16, f16, int8, int4)")
      ->delimiter(',');
  sub->add_option("--decode-shape", opts->dec.shapes,
                  "--decode/--decode-model: model shapes (mha, gqa; --decode: mha and gqa are a 7B "
                  "layer, 32 query heads of 128, and mha-model, gqa-model the --decode-model "
                  "layer, 12 query heads of 64; also kv8x1, kv8x2: the gqa cache read by 1 or 2 "
                  "query heads per KV head)")
      ->delimiter(',');
  sub->add_option("--decode-steps", opts->decode_steps,
                  "--decode-model: timed steps per row after one warm-up (at most 3 at ctx >= 16K)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--threads", opts->dec.threads,
                  "--decode/--decode-model: attention threads (default: all cores)");
  sub->add_option("--block-tokens", opts->dec.block_tokens,
                  "--decode/--decode-model: tokens per cache block")
      ->check(CLI::Range(1, 4096));
  sub->add_flag(
      "--small-pages", [opts](int64_t) { opts->dec.huge_pages = false; },
      "--decode: map the cache pool without transparent huge pages (for A/B runs)");
  sub->add_flag("--gemm", opts->gemm,
                "f32 GEMM rate (at::mm) at the square 2048 and the reference models' training "
                "shapes, at the BLAS threads of --threads; best and median of --repeats");
  sub->add_flag("--quick", opts->quick,
                "--decode: contexts 1K and 8K, batch 1 only (a quick subset)");
  return {
      sub, [opts] {
        if (opts->gemm) {
          bench_gemm(opts->repeats, opts->json);
          return;
        }
        if (opts->compress) {
          bench_compression(opts->json);
          return;
        }
        if (opts->prefill_model) {
          PrefillCliOptions p = opts->prefill;
          if (opts->dec.shapes.size() > 1)
            throw Error("bench --prefill-model: give at most one --decode-shape");
          if (!opts->dec.shapes.empty()) p.shape = opts->dec.shapes.front();
          p.repeats = opts->repeats;
          p.threads = opts->dec.threads;
          p.json = opts->json;
          run_prefill_bench(p);
          return;
        }
        if (opts->decode_model) {
          ModelDecodeCliOptions m;
          m.bench.ctx = opts->dec.ctx;
          m.bench.batch = opts->dec.batch;
          m.bench.threads = opts->dec.threads;
          m.bench.block_tokens = opts->dec.block_tokens;
          m.bench.steps = opts->decode_steps;
          m.bench.long_steps = std::min(3, opts->decode_steps);
          m.shapes = opts->dec.shapes;
          m.caches = opts->dec.caches;
          m.weights = opts->decode_weights;
          m.json = opts->json;
          run_model_decode_bench(m);
          return;
        }
        if (opts->decode_sweep) {
          DecodeBenchOptions d = opts->dec;
          if (opts->quick) {
            d.ctx = {1024, 8192};
            d.batch = {1};
          }
          d.repeats = opts->repeats;
          d.json = opts->json;
          run_decode_bench(d);
          return;
        }
        const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        auto bw = probe_read_bandwidth(threads);
        std::vector<RuntimeBenchResult> rows;
        auto run = [&](const Model& m, const std::string& name) {
          if (!opts->json) std::fprintf(stderr, "benchmarking %s ...\n", name.c_str());
          rows.push_back(
              bench_runtime(m, name, opts->ctx, opts->decode, bw.gb_per_s, opts->repeats));
        };
        if (opts->models.empty()) {
          if (auto shared = find_shared_dir()) {
            auto p = *shared / "models/stories260K/stories260K.bin";
            if (std::filesystem::exists(p))
              run(load_model(p, weights_choice(opts->weights)), "stories260K");
          } else if (!opts->json) {
            std::fprintf(stderr,
                         "note: ../shared not found (set THINKEYS_SHARED); skipping stories260K\n");
          }
          Model gpt2 = random_model(gpt2_small_config(), 7);
          if (auto f = weights_choice(opts->weights)) convert_weights(gpt2, *f);
          run(gpt2, "gpt2-small-shaped (random)");
        } else {
          for (const auto& p : opts->models) run(load_model(p, weights_choice(opts->weights)), p);
        }
        if (opts->json) {
          nlohmann::json j = {{"threads", threads},
                              {"read_bandwidth_gb_s", bw.gb_per_s},
                              {"ctx", opts->ctx},
                              {"decode_tokens", opts->decode},
                              {"models", nlohmann::json::array()}};
          for (const auto& r : rows)
            j["models"].push_back({{"name", r.name},
                                   {"path", r.path},
                                   {"parameters", r.parameters},
                                   {"weight_bytes", r.weight_bytes},
                                   {"kv_bytes_read", r.kv_bytes_read},
                                   {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                                   {"decode_tokens_per_s", r.decode_tokens_per_s},
                                   {"decode_ms", r.decode_ms},
                                   {"weight_bound_ms", r.weight_bound_ms},
                                   {"decode_over_bound", r.decode_ms / r.weight_bound_ms}});
          std::printf("%s\n", j.dump(2).c_str());
          return;
        }
        std::printf("threads %d, measured read bandwidth %.1f GB/s (streaming sum over %s)\n",
                    threads, bw.gb_per_s, human_bytes(static_cast<double>(bw.bytes)).c_str());
        std::printf("ctx %d; decode = last %d positions, weights %s\n\n", opts->ctx, opts->decode,
                    opts->weights.c_str());
        std::printf(
            "| model | decode path | params | weights read/step | prefill tok/s | decode tok/s | "
            "decode ms/tok | weight-read bound ms | decode / bound |\n");
        std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (const auto& r : rows)
          std::printf("| %s | %s | %lld | %s | %.0f | %.1f | %.3f | %.3f | %.2fx |\n",
                      r.name.c_str(), r.path.c_str(), static_cast<long long>(r.parameters),
                      human_bytes(static_cast<double>(r.weight_bytes)).c_str(),
                      r.prefill_tokens_per_s, r.decode_tokens_per_s, r.decode_ms, r.weight_bound_ms,
                      r.decode_ms / r.weight_bound_ms);
      }};
}

}  // namespace thinkeys::cli

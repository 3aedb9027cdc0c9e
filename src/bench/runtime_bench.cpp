#include "bench/runtime_bench.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "model/kv_cache.h"
#include "model/transformer.h"
#include "util/error.h"

namespace thinkeys {

RuntimeBenchResult bench_runtime(const Model& model, const std::string& name, int ctx,
                                 int decode_tokens, double bandwidth_gb_s, int repeats) {
  const ModelConfig& c = model.config;
  if (decode_tokens <= 0 || decode_tokens >= ctx) throw Error("bench: need 0 < decode tokens < ctx");
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, c.vocab_size - 1);
  std::vector<int32_t> tokens(ctx);
  for (auto& t : tokens) t = pick(rng);

  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  KVCache cache(c, ctx);
  double best_prefill = 1e30, best_decode = 1e30;
  for (int r = 0; r < repeats; ++r) {
    cache.clear();
    auto t0 = clock::now();
    forward(model, tokens, cache, Logits::Last);
    best_prefill = std::min(best_prefill, seconds(t0, clock::now()));

    cache.truncate(ctx - decode_tokens);
    auto t1 = clock::now();
    for (int i = ctx - decode_tokens; i < ctx; ++i)
      forward(model, std::span<const int32_t>(&tokens[i], 1), cache, Logits::Last);
    best_decode = std::min(best_decode, seconds(t1, clock::now()));
  }
  RuntimeBenchResult res;
  res.name = name;
  res.parameters = model.parameter_count();
  res.weight_bytes = model.weight_bytes();
  res.ctx = ctx;
  res.decode_tokens = decode_tokens;
  const int avg_len = ctx - decode_tokens / 2;
  res.kv_bytes_read = c.kv_bytes_per_token(4, 4) * avg_len;
  res.prefill_tokens_per_s = ctx / best_prefill;
  res.decode_tokens_per_s = decode_tokens / best_decode;
  res.decode_ms = 1e3 * best_decode / decode_tokens;
  res.weight_bound_ms = 1e3 * static_cast<double>(res.weight_bytes) / (bandwidth_gb_s * 1e9);
  return res;
}

}  // namespace thinkeys

#include "bench/runtime_bench.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "runtime/batch_decoder.h"
#include "util/error.h"
#include "util/threads.h"

namespace thinkeys {

RuntimeBenchResult bench_runtime(const Model& model, const std::string& name, int ctx,
                                 int decode_tokens, double bandwidth_gb_s, int repeats) {
  const ModelConfig& c = model.config;
  if (decode_tokens <= 0 || decode_tokens >= ctx)
    throw Error("bench: need 0 < decode tokens < ctx");
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, c.vocab_size - 1);
  std::vector<int32_t> tokens(ctx);
  for (auto& t : tokens) t = pick(rng);

  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  double best_prefill = 1e30, best_decode = 1e30;
  // The path generate, chat and serve decode on: paged f16 cache, fused step.
  BatchDecoderOptions d{CacheSpec{}, compute_threads()};
  CacheSpec probe_spec = d.cache;
  probe_spec.budget_bytes = std::size_t{1} << 24;  // address space only
  const PagedKVCache probe(cache_shape(c), probe_spec);
  const std::size_t blocks =
      (static_cast<std::size_t>(ctx) + d.cache.block_tokens - 1) / d.cache.block_tokens;
  d.cache.budget_bytes = probe.block_bytes() * (blocks + 1);
  BatchDecoder decoder(model, d);
  const auto kv_bytes_per_token = static_cast<int64_t>(decoder.cache().bytes_per_token());
  for (int r = 0; r < repeats; ++r) {
    auto t0 = clock::now();
    int id = decoder.add(tokens);
    best_prefill = std::min(best_prefill, seconds(t0, clock::now()));
    decoder.truncate(id, ctx - decode_tokens);
    auto t1 = clock::now();
    for (int i = ctx - decode_tokens; i < ctx; ++i)
      decoder.step(std::span<const int>(&id, 1), std::span<const int32_t>(&tokens[i], 1));
    best_decode = std::min(best_decode, seconds(t1, clock::now()));
    decoder.remove(id);
  }
  RuntimeBenchResult res;
  res.name = name;
  res.parameters = model.parameter_count();
  res.weight_bytes = model.weight_bytes();
  res.ctx = ctx;
  res.decode_tokens = decode_tokens;
  const int avg_len = ctx - decode_tokens / 2;
  res.kv_bytes_read = kv_bytes_per_token * avg_len;
  res.path = "paged f16, fused";
  res.prefill_tokens_per_s = ctx / best_prefill;
  res.decode_tokens_per_s = decode_tokens / best_decode;
  res.decode_ms = 1e3 * best_decode / decode_tokens;
  res.weight_bound_ms = 1e3 * static_cast<double>(res.weight_bytes) / (bandwidth_gb_s * 1e9);
  return res;
}

}  // namespace thinkeys

#include "bench/decode_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <random>

#include "bench/bandwidth_probe.h"
#include "bench/cpu_clock.h"
#include "cache/paged_kv_cache.h"
#include "kernels/decode_attention.h"
#include "util/error.h"
#include "util/work_pool.h"

namespace thinkeys {

std::vector<DecodeBenchShape> decode_bench_shapes() {
  // mha and gqa: a 7B model's attention layer (32 query heads of 128);
  // mha-model and gqa-model: the layer of the model `bench --decode-model`
  // builds (12 query heads of 64, 12 or 4 KV heads), so kernel figures can be
  // read beside the whole-model ones.
  return {{"mha", 32, 32, 128},     {"gqa", 32, 8, 128},        {"mha-model", 12, 12, 64},
          {"gqa-model", 12, 4, 64}, {"kv8x1", 8, 8, 128, true}, {"kv8x2", 16, 8, 128, true}};
}

std::vector<DecodeBenchCache> decode_bench_caches() {
  return {{"full-f16", 1.0, CacheDType::F16, CacheDType::F16, false},
          {"thin-f16", 0.25, CacheDType::F16, CacheDType::F16, false},
          {"thin-int8", 0.25, CacheDType::Int8, CacheDType::F16, false},
          {"thin-int4", 0.25, CacheDType::Int4, CacheDType::F16, false},
          {"latent-f16", 0.25, CacheDType::F16, CacheDType::F16, true}};
}

std::vector<DecodeBenchCache> decode_bench_diagnostic_caches() {
  return {{"full-f16-bytoken", 1.0, CacheDType::F16, CacheDType::F16, false, true},
          {"thin-f16-bytoken", 0.25, CacheDType::F16, CacheDType::F16, false, true},
          {"thin-int8-bytoken", 0.25, CacheDType::Int8, CacheDType::F16, false, true},
          {"thin-int4-bytoken", 0.25, CacheDType::Int4, CacheDType::F16, false, true},
          // The latent cache in int8 (thin servers with --cache-k int8).
          {"latent-int8", 0.25, CacheDType::Int8, CacheDType::F16, true},
          // r = 3/16 of the head: 24 of 128, not a whole number of vectors.
          {"r24-f16", 0.1875, CacheDType::F16, CacheDType::F16, false, false},
          {"r24-f16-bytoken", 0.1875, CacheDType::F16, CacheDType::F16, false, true}};
}

DecodeBenchCache find_decode_bench_cache(const std::string& name) {
  std::string known;
  for (const auto& list : {decode_bench_caches(), decode_bench_diagnostic_caches()})
    for (const auto& c : list) {
      if (c.name == name) return c;
      known += (known.empty() ? "" : ", ") + c.name;
    }
  throw Error("unknown decode bench cache '" + name + "' (expected one of " + known + ")");
}

DecodeBenchRow bench_decode_attention(const DecodeBenchShape& sh, const DecodeBenchCache& cc,
                                      int ctx, int batch, StreamBuffer& flush, int repeats,
                                      int block_tokens, bool huge_pages) {
  const int threads = flush.threads();
  const int d = sh.head_dim, nk = sh.n_kv_heads, G = sh.n_heads / sh.n_kv_heads;
  const int r = std::max(1, static_cast<int>(std::lround(cc.key_ratio * d)));
  const std::vector<CacheLayerShape> layers = {{nk, r, nk, d, G}};
  CacheSpec spec{cc.key_dtype, cc.value_dtype, kDefaultQuantGroup, block_tokens, 0, huge_pages};
  spec.keys_by_channel = !cc.keys_by_token;
  const int blocks_per_seq = (ctx + block_tokens - 1) / block_tokens;
  spec.budget_bytes = PagedKVCache(layers, CacheSpec{spec.key_dtype, spec.value_dtype, spec.group,
                                                     block_tokens, std::size_t{1} << 24})
                          .block_bytes() *
                      blocks_per_seq * batch;
  PagedKVCache cache(layers, spec);

  // Encode one block of random rows per sequence and copy it to the rest:
  // the kernel's speed does not depend on the values.
  std::mt19937 rng(1);
  std::normal_distribution<float> N;
  std::vector<float> row(std::max(r, d));
  std::vector<int> ids;
  for (int b = 0; b < batch; ++b) {
    const int id = cache.add_sequence();
    cache.reserve(id, ctx);
    cache.set_length(id, ctx);
    for (int t = 0; t < std::min(ctx, block_tokens); ++t)
      for (int h = 0; h < nk; ++h) {
        for (auto& x : row) x = N(rng);
        cache.write_key(id, 0, h, t, row.data());
        cache.write_value(id, 0, h, t, row.data());
      }
    for (int i = 1; i < blocks_per_seq; ++i) cache.copy_block(id, 0, i);
    ids.push_back(id);
  }

  AttentionShape shape;
  shape.head_dim = d;
  shape.max_queries = G;
  shape.max_key_width = r;
  shape.block_tokens = block_tokens;
  shape.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  shape.max_share = 1;
  shape.max_heads = nk;
  WorkPool pool(threads);
  std::vector<AttentionScratch> scratch;
  for (int t = 0; t < threads; ++t) scratch.emplace_back(shape);
  AttentionSplits splits;  // as BatchDecoder runs it

  std::vector<float> up_t(static_cast<std::size_t>(r) * d), inv_freq(d / 2);
  for (auto& x : up_t) x = N(rng) / std::sqrt(static_cast<float>(r));
  for (int i = 0; i < d / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / d);
  const RopeSteps steps = make_rope_steps(inv_freq, block_tokens);
  const LatentKeys latent{up_t.data(), 1, &steps};

  const int qw = cc.latent ? d : r;
  std::vector<float> q(static_cast<std::size_t>(batch) * sh.n_heads * qw);
  for (auto& x : q) x = N(rng);
  std::vector<float> out(static_cast<std::size_t>(batch) * sh.n_heads * d);
  std::vector<PagedRows> values;
  for (int id : ids)
    for (int h = 0; h < nk; ++h) values.push_back(cache.values(id, 0, h));
  std::vector<AttentionTask> tasks;
  std::vector<const LatentKeys*> latents;
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < nk; ++h) {
      const std::size_t head0 = static_cast<std::size_t>(b) * sh.n_heads + h * G;
      tasks.push_back({q.data() + head0 * qw, G, cache.keys(ids[b], 0, h),
                       &values[static_cast<std::size_t>(b) * nk + h], 1, 0, ctx,
                       out.data() + head0 * d});
      if (cc.latent) latents.push_back(&latent);
    }

  // In a decode step the attention call follows the q/k/v projections on
  // the same pool, whose workers are then still polling for work; after a
  // flush they are asleep, and waking them (30-130 us on the VM) is not the
  // kernel's cost. Returns the call's seconds; `cpu` the pool's CPU seconds
  // and `share` their share of the call (pool_cpu_share).
  auto timed_call = [&](double& cpu, double& share) {
    pool.run(pool.threads(), [](int, int) {});
    const PoolCpuSample c0 = pool_cpu_sample(pool);
    const auto t0 = std::chrono::steady_clock::now();
    splits.run(shape, tasks, latents, pool, scratch);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const PoolCpuSample c1 = pool_cpu_sample(pool);
    cpu = c1.cpu - c0.cpu;
    share = pool_cpu_share(c0, c1, pool.threads());
    return s;
  };
  double best = 1e30, best_cpu = 0, best_share = 0, probe = 0, cpu = 0, share = 0;
  for (int rep = 0; rep <= repeats; ++rep) {  // the first run warms up
    probe = std::max(probe, flush.read(true));
    const double s = timed_call(cpu, share);
    if (rep > 0 && s < best) {
      best = s;
      best_cpu = cpu;
      best_share = share;
    }
  }
  double resident = 1e30;  // the last evicted run left the cache loaded
  for (int rep = 0; rep < repeats; ++rep) resident = std::min(resident, timed_call(cpu, share));

  DecodeBenchRow row_out;
  row_out.shape = sh.name;
  row_out.cache = cc.name;
  row_out.ctx = ctx;
  row_out.batch = batch;
  row_out.key_width = r;
  row_out.head_dim = d;
  row_out.n_heads = sh.n_heads;
  row_out.n_kv_heads = nk;
  row_out.bytes_read =
      static_cast<int64_t>(ctx) * batch * nk *
      static_cast<int64_t>(cache.key_format(0).bytes() + cache.value_format(0).bytes());
  row_out.seconds = best;
  row_out.cpu_seconds = best_cpu;
  row_out.cpu_util = best_share;
  row_out.gb_per_s = row_out.bytes_read / best / 1e9;
  row_out.probe_gb_per_s = probe;
  row_out.resident_seconds = resident;
  return row_out;
}

}  // namespace thinkeys

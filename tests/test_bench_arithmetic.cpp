// The benchmarks' comparison arithmetic on hand-made rows: time relative to
// full-f16 in the same cell, tokens/s, the bandwidth bounds and which shapes
// and layouts a sweep selects. Expected values are worked out by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "bench/bandwidth_probe.h"
#include "bench/cpu_clock.h"
#include "bench/decode_bench.h"
#include "bench/model_decode_bench.h"
#include "bench/relative_time.h"
#include "bench/round_order.h"
#include "bench/sweep_selection.h"
#include "config/cache_layout.h"
#include "util/error.h"

namespace thinkeys {
namespace {

DecodeBenchRow kernel_row(std::string shape, std::string cache, int ctx, int batch, double seconds,
                          double probe = 0) {
  DecodeBenchRow r;
  r.shape = std::move(shape);
  r.cache = std::move(cache);
  r.ctx = ctx;
  r.batch = batch;
  r.seconds = seconds;
  r.probe_gb_per_s = probe;
  return r;
}

TEST(BenchArithmetic, KernelTimeIsRelativeToFullF16OfTheSameCell) {
  const std::vector<DecodeBenchRow> rows = {
      kernel_row("gqa", "full-f16", 4096, 1, 0.008),
      kernel_row("gqa", "thin-int4", 4096, 1, 0.002),  // 2 / 8
      kernel_row("gqa", "thin-int4", 4096, 8, 0.004),  // no full-f16 at batch 8
      kernel_row("mha", "thin-int4", 4096, 1, 0.003),  // nor for mha
      kernel_row("gqa", "full-f16", 1024, 1, 0.004),
      kernel_row("gqa", "latent-f16", 1024, 1, 0.006),  // 6 / 4
  };
  const std::vector<double> vs = decode_time_vs_full_f16(rows);
  ASSERT_EQ(vs.size(), rows.size());
  EXPECT_DOUBLE_EQ(vs[0], 1.0);
  EXPECT_DOUBLE_EQ(vs[1], 0.25);
  EXPECT_EQ(vs[2], 0.0);
  EXPECT_EQ(vs[3], 0.0);
  EXPECT_DOUBLE_EQ(vs[4], 1.0);
  EXPECT_DOUBLE_EQ(vs[5], 1.5);
}

TEST(BenchArithmetic, AttentionOnlyTokensPerSecondAndBestBandwidth) {
  // 8 sequences, 32 layers of 0.5 ms each: 8 / 0.016 s = 500 tokens/s.
  EXPECT_DOUBLE_EQ(attention_only_tokens_per_s(kernel_row("gqa", "x", 1, 8, 0.0005), 32), 500.0);
  const std::vector<DecodeBenchRow> rows = {kernel_row("gqa", "a", 1, 1, 1, 9.5),
                                            kernel_row("gqa", "b", 1, 1, 1, 12.25)};
  EXPECT_DOUBLE_EQ(best_read_bandwidth(10, 11, rows), 12.25);
  EXPECT_DOUBLE_EQ(best_read_bandwidth(13, 11, rows), 13.0);
  EXPECT_DOUBLE_EQ(best_read_bandwidth(10, 11, {}), 11.0);
}

// One kernel cell run for real on a small cache: the row counts the bytes
// one step reads by hand (512 tokens x 12 KV heads x (64 + 64) f16 values)
// and carries both timings, evicted and resident.
TEST(BenchArithmetic, KernelRowHoldsItsBytesAndBothTimings) {
  const auto shapes = decode_bench_shapes();
  const auto mha = std::find_if(shapes.begin(), shapes.end(),
                                [](const DecodeBenchShape& s) { return s.name == "mha-model"; });
  ASSERT_NE(mha, shapes.end());
  StreamBuffer flush(1, std::size_t{4} << 20);
  const DecodeBenchRow r = bench_decode_attention(*mha, find_decode_bench_cache("full-f16"), 512, 1,
                                                  flush, 2, 64, false);
  EXPECT_EQ(r.bytes_read, 512 * 12 * (64 + 64) * 2);
  EXPECT_GT(r.seconds, 0.0);
  EXPECT_LT(r.seconds, 10.0);
  EXPECT_GT(r.resident_seconds, 0.0);
  EXPECT_LT(r.resident_seconds, 10.0);
  EXPECT_GT(r.cpu_seconds, 0.0);
  EXPECT_GT(r.cpu_util, 0.0);
  EXPECT_LT(r.cpu_util, 1.5);  // a share of the threads' time, up to the clocks' jitter
}

TEST(BenchArithmetic, PoolCpuShareIsCpuOverWallTimesThreads) {
  // 1.5 CPU seconds over 1 wall second on 2 threads: three quarters.
  EXPECT_DOUBLE_EQ(pool_cpu_share({1.0, 10.0}, {2.5, 11.0}, 2), 0.75);
  EXPECT_DOUBLE_EQ(pool_cpu_share({0.0, 0.0}, {0.004, 0.002}, 2), 1.0);
  EXPECT_EQ(pool_cpu_share({1.0, 5.0}, {2.0, 5.0}, 2), 0.0);  // no wall time: no share
}

ModelDecodeRow model_row(std::string cache, std::string weights, int batch, double median,
                         double best, bool skipped = false) {
  ModelDecodeRow r;
  r.shape = "gqa";
  r.cache = std::move(cache);
  r.weights = std::move(weights);
  r.ctx = 2048;
  r.batch = batch;
  r.median_s = median;
  r.best_s = best;
  r.skipped = skipped;
  return r;
}

TEST(BenchArithmetic, ModelTimeIsRelativeToFullF16OfTheSameWeightsAndCell) {
  const std::vector<ModelDecodeRow> rows = {
      model_row("full-f16", "f32", 4, 0.040, 0.032),
      model_row("thin-f16", "f32", 4, 0.030, 0.028),   // 0.75 and 0.875
      model_row("thin-f16", "bf16", 4, 0.020, 0.020),  // no bf16 reference
      model_row("full-f16", "int8", 4, 0.010, 0.010, /*skipped=*/true),
      model_row("thin-int8", "int8", 4, 0.008, 0.008),  // a skipped row is no reference
  };
  const std::vector<VsFullF16> vs = model_time_vs_full_f16(rows);
  ASSERT_EQ(vs.size(), rows.size());
  EXPECT_DOUBLE_EQ(vs[0].median, 1.0);
  EXPECT_DOUBLE_EQ(vs[1].median, 0.75);
  EXPECT_DOUBLE_EQ(vs[1].best, 0.875);
  EXPECT_EQ(vs[2].median, 0.0);
  EXPECT_EQ(vs[2].best, 0.0);
  EXPECT_EQ(vs[4].median, 0.0);
}

TEST(BenchArithmetic, BandwidthBounds) {
  ModelDecodeRow r;
  r.weight_bytes = 300'000'000;
  r.kv_bytes_read = 100'000'000;
  // 0.3 GB and 0.4 GB at 20 GB/s: 15 ms and 20 ms.
  EXPECT_DOUBLE_EQ(weight_bound_seconds(r, 20e9), 0.015);
  EXPECT_DOUBLE_EQ(weight_and_kv_bound_seconds(r, 20e9), 0.020);
}

TEST(BenchArithmetic, SweepSelection) {
  // Defaults: the shapes that are not diagnostic, every default layout.
  for (const auto& s : select_decode_bench_shapes({})) EXPECT_FALSE(s.diagnostic) << s.name;
  EXPECT_EQ(select_decode_bench_caches({}).size(), decode_bench_caches().size());
  // Named shapes come in the built-in order, named caches in the given order.
  const auto shapes = select_decode_bench_shapes({"gqa", "mha"});
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(shapes[0].name, "mha");
  EXPECT_EQ(shapes[1].name, "gqa");
  const auto diag = select_decode_bench_shapes({"kv8x1"});
  ASSERT_EQ(diag.size(), 1u);
  EXPECT_TRUE(diag[0].diagnostic);
  const auto caches = select_decode_bench_caches({"thin-int4", "full-f16"});
  ASSERT_EQ(caches.size(), 2u);
  EXPECT_EQ(caches[0].name, "thin-int4");
  EXPECT_EQ(caches[1].name, "full-f16");
  EXPECT_THROW(select_decode_bench_shapes({"gqa", "nope"}), Error);
  EXPECT_THROW(select_decode_bench_caches({"nope"}), Error);

  const auto mshapes = select_model_decode_shapes({"mha"});
  ASSERT_EQ(mshapes.size(), 1u);
  EXPECT_EQ(mshapes[0].kv_heads, 12);
  EXPECT_EQ(select_model_decode_shapes({}).size(), 2u);
  const auto mcaches = select_model_decode_caches({"thin-int8"});
  ASSERT_EQ(mcaches.size(), 1u);
  EXPECT_EQ(mcaches[0].key_divisor, 4);
  EXPECT_THROW(select_model_decode_shapes({"nope"}), Error);
}

TEST(BenchArithmetic, KernelSweepHasTheWholeModelsLayer) {
  // mha-model and gqa-model are the attention layer of the model
  // bench --decode-model builds, and run by default.
  for (const char* name : {"mha", "gqa"}) {
    const auto picked = select_decode_bench_shapes({std::string(name) + "-model"});
    ASSERT_EQ(picked.size(), 1u) << name;
    const DecodeBenchShape& k = picked[0];
    const ModelConfig c = model_decode_config(find_model_decode_shape(name), 4);
    EXPECT_EQ(k.n_heads, c.n_heads) << name;
    EXPECT_EQ(k.n_kv_heads, c.n_kv_heads) << name;
    EXPECT_EQ(k.head_dim, c.head_dim) << name;
    // The sweep's thin caches keep a quarter of the head, as the model's do.
    EXPECT_EQ(std::lround(find_decode_bench_cache("thin-int8").key_ratio * k.head_dim),
              c.key_width(0))
        << name;
    EXPECT_FALSE(k.diagnostic) << name;
  }
  EXPECT_THROW(select_model_decode_caches({"nope"}), Error);
}

TEST(BenchArithmetic, MlaAndLrkvShapesCacheTheirOwnRows) {
  // Only by name: the default grid stays gqa and mha.
  const ModelDecodeShape mla = find_model_decode_shape("mla");
  const ModelDecodeShape lrkv = find_model_decode_shape("lrkv");
  const ModelConfig m = model_decode_config(mla, 1), l = model_decode_config(lrkv, 1);
  // MLA: latent 256 + RoPE key 32 per token and layer, no value rows;
  // LRKV: shared 64 + 12 heads x rank 16 = 256 for keys and for values.
  const auto ms = cache_shape(m), ls = cache_shape(l);
  EXPECT_EQ(ms[0].key_width, 288);
  EXPECT_EQ(ms[0].value_heads, 0);
  EXPECT_EQ(ls[0].key_width, 256);
  EXPECT_EQ(ls[0].value_width, 256);
  EXPECT_EQ(ms[0].queries_per_key, 12);
  // Thin layouts do not apply to either; MLA's keys hold its values, so they
  // stay floats.
  for (const char* name : {"thin-f16", "thin-int8"}) {
    EXPECT_FALSE(model_decode_cache_applies(mla, find_model_decode_cache(name))) << name;
    EXPECT_FALSE(model_decode_cache_applies(lrkv, find_model_decode_cache(name))) << name;
  }
  EXPECT_TRUE(model_decode_cache_applies(mla, find_model_decode_cache("full-f16")));
  EXPECT_TRUE(model_decode_cache_applies(find_model_decode_shape("gqa"),
                                         find_model_decode_cache("thin-int8")));
  EXPECT_THROW(model_decode_config(mla, 4), Error);
}

TEST(BenchArithmetic, RoundOrderGivesEveryCaseEveryPosition) {
  // Three cases, worked out by hand: rotate left by round / 2, reverse odd rounds.
  const std::vector<std::vector<int>> expected = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0},
                                                  {0, 2, 1}, {2, 0, 1}, {1, 0, 2}};
  std::vector<int> order(3);
  for (int round = 0; round < 6; ++round) {
    round_order(round, order);
    EXPECT_EQ(order, expected[round]) << "round " << round;
  }
  round_order(6, order);  // the cycle starts again
  EXPECT_EQ(order, expected[0]);
  // Nine cases (three caches x three weight formats) over 18 rounds: each case
  // is first and last exactly twice, i.e. right after the probe as often as
  // any other case.
  std::vector<int> nine(9), first(9, 0), last(9, 0);
  for (int round = 0; round < 18; ++round) {
    round_order(round, nine);
    std::vector<int> sorted = nine;
    std::sort(sorted.begin(), sorted.end());
    for (int k = 0; k < 9; ++k)
      ASSERT_EQ(sorted[k], k) << "round " << round << " not a permutation";
    ++first[nine.front()];
    ++last[nine.back()];
  }
  EXPECT_EQ(first, std::vector<int>(9, 2));
  EXPECT_EQ(last, std::vector<int>(9, 2));
  std::vector<int> none;
  round_order(3, none);  // nothing to order, nothing written
}

}  // namespace
}  // namespace thinkeys

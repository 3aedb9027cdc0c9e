// Capacity planning: the cache footprint and sequence counts against
// figures derived by hand from the layout rules (cache_dtype.h,
// cache_footprint.h), and against what a real PagedKVCache of the same
// budget lets sequences reserve. Torch-free.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cache/paged_kv_cache.h"
#include "io/hf_config.h"
#include "plan/byte_size.h"
#include "plan/capacity_plan.h"
#include "plan/model_source.h"
#include "plan/parameter_count.h"
#include "plan/plan_report.h"
#include "plan/sequence_capacity.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::vector<CacheLayerShape> uniform(int layers, int kv_heads, int key_width, int head_dim) {
  return std::vector<CacheLayerShape>(layers, {kv_heads, key_width, kv_heads, head_dim});
}

CacheSpec spec_of(CacheDType k, CacheDType v, int block_tokens = 64,
                  std::size_t budget = std::size_t{1} << 30) {
  CacheSpec s;
  s.key_dtype = k;
  s.value_dtype = v;
  s.block_tokens = block_tokens;
  s.budget_bytes = budget;
  return s;
}

TEST(CacheFootprint, Llama2_7B_PaperFigures) {
  // 32 layers x 32 heads x 128, K and V at 2 bytes: 32 * 32 * 128 * 2 * 2.
  const auto f =
      cache_footprint(uniform(32, 32, 128, 128), spec_of(CacheDType::F16, CacheDType::F16));
  EXPECT_EQ(f.key_payload_per_token, 262144u);
  EXPECT_EQ(f.value_payload_per_token, 262144u);
  EXPECT_EQ(f.payload_bytes_per_token(), 524288u);
  // 64-token blocks of rows that are multiples of 64 bytes: no padding.
  EXPECT_EQ(f.block_bytes, 524288u * 64);
  // 128,000 tokens are exactly 2000 blocks: 67,108,864,000 B = 67.1 GB.
  const auto full = sequence_capacity(f, f.block_bytes * 2000, 128000);
  EXPECT_EQ(full.blocks_per_sequence, 2000);
  EXPECT_EQ(full.bytes_per_sequence, 67108864000u);
  EXPECT_EQ(full.sequences, 1);
  EXPECT_EQ(format_bytes(67108864000.0, true), "67.1 GB");
  // Keys at d/4 = 32: (32 * 2 + 128 * 2) * 32 heads * 32 layers = 327,680 B/token.
  const auto t =
      cache_footprint(uniform(32, 32, 32, 128), spec_of(CacheDType::F16, CacheDType::F16));
  EXPECT_EQ(t.payload_bytes_per_token(), 327680u);
  EXPECT_EQ(sequence_capacity(t, std::size_t{1} << 40, 128000).bytes_per_sequence, 41943040000u);
  EXPECT_EQ(format_bytes(41943040000.0, true), "41.9 GB");
}

TEST(CacheFootprint, Llama3_8B_GqaIsAQuarter) {
  // 32 layers, 8 KV heads x 128: 32 * 8 * 128 * 2 * 2 = 131,072 B/token.
  const auto f =
      cache_footprint(uniform(32, 8, 128, 128), spec_of(CacheDType::F16, CacheDType::F16));
  EXPECT_EQ(f.payload_bytes_per_token(), 131072u);
  EXPECT_EQ(f.block_bytes, 131072u * 64);
}

TEST(CacheFootprint, Int4KeysCarryOneF16ScalePer32Values) {
  // A 128-wide int4 key: 64 bytes of nibbles + 4 scales * 2 bytes = 72.
  // A 32-wide one: 16 + 2 = 18. Values f16: 256.
  const auto full =
      cache_footprint(uniform(2, 4, 128, 128), spec_of(CacheDType::Int4, CacheDType::F16));
  EXPECT_EQ(full.key_payload_per_token, 2u * 4 * 72);
  EXPECT_EQ(full.value_payload_per_token, 2u * 4 * 256);
  const auto thin =
      cache_footprint(uniform(2, 4, 32, 128), spec_of(CacheDType::Int4, CacheDType::Int8));
  EXPECT_EQ(thin.key_payload_per_token, 2u * 4 * 18);
  EXPECT_EQ(thin.value_payload_per_token, 2u * 4 * (128 + 8));  // int8: + 4 scales
  // 64 tokens of 18-byte rows = 1152 = 18 cache lines: no padding.
  EXPECT_EQ(thin.key_block_bytes, 2u * 4 * 1152);
}

TEST(CacheFootprint, PerLayerRanksAndAlignmentPadding) {
  // A thin-key model with a rank per layer, 2 KV heads of 64 values, 16-token
  // blocks so that some runs need padding to a 64-byte line.
  const std::vector<CacheLayerShape> layers = {
      {2, 8, 2, 64}, {2, 24, 2, 64}, {2, 40, 2, 64}, {2, 64, 2, 64}};
  const auto f = cache_footprint(layers, spec_of(CacheDType::Int4, CacheDType::F16, 16));
  // int4 key rows: r = 8 -> 4 + 2 = 6 B, x16 = 96 -> 128; r = 24 -> 12 + 2 = 14,
  // x16 = 224 -> 256; r = 40 -> 20 + 2 * 2 = 24, x16 = 384; r = 64 -> 32 + 4 = 36,
  // x16 = 576. Values: 128 B x 16 = 2048 per head.
  EXPECT_EQ(f.key_payload_per_token, 2u * (6 + 14 + 24 + 36));
  EXPECT_EQ(f.key_block_bytes, 2u * (128 + 256 + 384 + 576));
  EXPECT_EQ(f.value_block_bytes, 4u * 2 * 2048);
  EXPECT_EQ(f.block_bytes, f.key_block_bytes + f.value_block_bytes);
  // The cache itself lays out the same block.
  PagedKVCache cache(layers, spec_of(CacheDType::Int4, CacheDType::F16, 16, 1 << 20));
  EXPECT_EQ(cache.block_bytes(), f.block_bytes);
  for (int l = 0; l < 4; ++l)
    EXPECT_EQ(cache.layer_block_bytes(l), f.layers[l].section_bytes()) << "layer " << l;
}

// Sequences of `ctx` tokens a real pool of `budget` bytes lets reserve, one
// after another, until it refuses.
long long sequences_that_reserve(const std::vector<CacheLayerShape>& layers, CacheSpec spec,
                                 int ctx) {
  spec.huge_pages = false;
  PagedKVCache cache(layers, spec);
  long long n = 0;
  for (;;) {
    const int id = cache.add_sequence();
    try {
      cache.reserve(id, ctx);
    } catch (const Error&) {
      return n;
    }
    ++n;
  }
}

TEST(SequenceCapacity, EqualsWhatThePagedCacheLetsReserve) {
  const std::vector<CacheLayerShape> layers = {{2, 24, 4, 48}, {2, 16, 4, 48}, {2, 48, 4, 48}};
  for (CacheDType k : {CacheDType::F16, CacheDType::Int8, CacheDType::Int4})
    for (int bt : {16, 64})
      for (int ctx : {1, 63, 64, 65, 1000})
        for (std::size_t budget : {std::size_t{3} << 20, std::size_t{5000000}}) {
          const CacheSpec spec = spec_of(k, CacheDType::F16, bt, budget);
          const auto plan = sequence_capacity(cache_footprint(layers, spec), budget, ctx);
          EXPECT_EQ(plan.sequences, sequences_that_reserve(layers, spec, ctx))
              << to_string(k) << " block " << bt << " ctx " << ctx << " budget " << budget;
          PagedKVCache one(layers, [&] {
            CacheSpec s = spec;
            s.huge_pages = false;
            return s;
          }());
          EXPECT_EQ(plan.blocks, static_cast<std::size_t>(one.total_blocks()));
          EXPECT_EQ(plan.pool_bytes, one.capacity_bytes());
          // The longest single sequence takes every block and no more.
          const int id = one.add_sequence();
          one.reserve(id, static_cast<int>(plan.longest_tokens));
          EXPECT_THROW(one.reserve(id, static_cast<int>(plan.longest_tokens) + 1), Error);
        }
}

TEST(SequenceCapacity, DescribeNamesTheCount) {
  // 3 layers of 1 KV head x 64 at f16: 3 * 2 * 128 = 768 B/token, 64-token
  // blocks of 49,152 B; 1 MiB holds 21 of them; 4096 tokens take 64 blocks.
  const auto f = cache_footprint(uniform(3, 1, 64, 64), spec_of(CacheDType::F16, CacheDType::F16));
  const auto c = sequence_capacity(f, std::size_t{1} << 20, 300);
  EXPECT_EQ(c.blocks, 21u);
  EXPECT_EQ(c.blocks_per_sequence, 5);
  EXPECT_EQ(c.sequences, 4);
  EXPECT_EQ(c.longest_tokens, 21 * 64);
  const std::string line = describe(c);
  EXPECT_NE(line.find("4 sequences of 300 tokens"), std::string::npos) << line;
  EXPECT_NE(line.find("1344 tokens"), std::string::npos) << line;
  EXPECT_THROW(sequence_capacity(f, 1 << 20, 0), Error);
}

TEST(ByteSize, ParsesDecimalBinaryAndDevices) {
  EXPECT_EQ(parse_memory_size("24GiB").bytes, std::size_t{24} << 30);
  EXPECT_EQ(parse_memory_size("80GB").bytes, std::size_t{80000000000});
  const auto eight = parse_memory_size("8x80GB");
  EXPECT_EQ(eight.bytes, std::size_t{640000000000});
  EXPECT_EQ(eight.devices, 8);
  EXPECT_EQ(parse_memory_size("512 MiB").bytes, std::size_t{512} << 20);
  EXPECT_EQ(parse_memory_size("1e9").bytes, std::size_t{1000000000});
  for (const char* bad : {"", "GB", "-1GB", "24 parsecs", "0x80GB", "x80GB", "1.5xGB"})
    EXPECT_THROW(parse_memory_size(bad), Error) << bad;
}

ModelConfig config_file(const std::string& name) {
  return read_plan_model(std::string(THINKEYS_TEST_DATA) + "/configs/" + name).config;
}

PlanOptions options(std::size_t memory, std::vector<long long> contexts,
                    std::vector<CacheDType> keys = {CacheDType::F16}) {
  PlanOptions o;
  o.memory_bytes = memory;
  o.contexts = std::move(contexts);
  o.key_dtypes = std::move(keys);
  return o;
}

TEST(ParameterCount, PublishedSizesFromConfigAlone) {
  // The parameter counts the model cards publish.
  EXPECT_EQ(count_parameters(config_file("llama-2-7b.json")).total, 6738415616);
  EXPECT_EQ(count_parameters(config_file("llama-3-8b.json")).total, 8030261248);
  EXPECT_EQ(count_parameters(config_file("mistral-7b-v0.1.json")).total, 7241732096);
  EXPECT_EQ(count_parameters(config_file("llama-2-70b.json")).total, 68976648192);
  // A step reads everything but the embedding table (32000 x 4096).
  const auto p = count_parameters(config_file("llama-2-7b.json"));
  EXPECT_EQ(p.total - p.per_step, 32000 * 4096);
}

TEST(PlanModel, ShapeNeutralSettingsArePlannedNotRefused) {
  // Llama-3.1-8B: the runtime refuses its rope_scaling type, which changes no shape.
  const std::string path = std::string(THINKEYS_TEST_DATA) + "/configs/llama-3.1-8b.json";
  EXPECT_THROW(read_hf_config(path), Error);
  const PlanModel m = read_plan_model(path);
  ASSERT_EQ(m.unsupported.size(), 1u);
  EXPECT_NE(m.unsupported[0].find("rope_scaling type 'llama3'"), std::string::npos);
  EXPECT_EQ(m.config.max_positions, 131072);
  EXPECT_EQ(count_parameters(m.config).total, 8030261248);  // Llama-3-8B's shapes
  PlanOptions o = options(80000000000, {131072});
  o.keys = {{}};
  const PlanTable t = plan_capacity(m.config, o).tables[0];
  EXPECT_FALSE(t.beyond_model_context);
  // 131,072 B/token x 131,072 tokens = 17,179,869,184 B; 80e9 - 2 x 8,030,261,248
  // - 1 GiB = 62,865,735,680 B of 8 MiB blocks: 7493 blocks, 2048 per sequence.
  EXPECT_EQ(t.rows[0].capacity.bytes_per_sequence, 17179869184u);
  EXPECT_EQ(t.rows[0].capacity.sequences, 3);
}

TEST(CapacityPlan, Llama2_7B_On80GB) {
  const ModelConfig c = config_file("llama-2-7b.json");
  PlanOptions o = options(80000000000, {4096, 128000});
  const CapacityPlan p = plan_capacity(c, o);
  // f16 weights 2 x 6,738,415,616 and a 1 GiB reserve leave
  // 80e9 - 13,476,831,232 - 1,073,741,824 = 65,449,426,944 B.
  EXPECT_EQ(p.weight_dtype, "f16");
  EXPECT_EQ(p.weight_bytes, 13476831232u);
  EXPECT_EQ(p.cache_budget_bytes, 65449426944u);
  ASSERT_EQ(p.tables.size(), 2u);
  const PlanTable& t = p.tables[1];
  EXPECT_EQ(t.ctx, 128000);
  EXPECT_TRUE(t.beyond_model_context);  // trained to 4096
  ASSERT_EQ(t.rows.size(), 2u);         // full keys, keys at d/4
  const PlanRow &full = t.rows[0], &quarter = t.rows[1];
  EXPECT_EQ(full.keys, "full 128");
  EXPECT_EQ(full.key_bytes_per_token, 262144u);
  EXPECT_EQ(full.value_bytes_per_token, 262144u);
  EXPECT_EQ(full.capacity.bytes_per_sequence, 67108864000u);  // 67.1 GB
  // Blocks of 64 x 524,288 B = 33,554,432: the budget holds 1950 of them,
  // the 2000 one sequence needs do not fit; alone, 1950 x 64 tokens.
  EXPECT_EQ(full.capacity.sequences, 0);
  EXPECT_EQ(full.capacity.longest_tokens, 124800);
  EXPECT_DOUBLE_EQ(full.ratio_to_full_f16, 1.0);
  EXPECT_EQ(quarter.keys, "d/4 32");
  EXPECT_EQ(quarter.key_bytes_per_token, 65536u);
  EXPECT_EQ(quarter.capacity.bytes_per_sequence, 41943040000u);  // 41.9 GB
  // 20,971,520 B blocks: 3120 fit, one sequence of 2000.
  EXPECT_EQ(quarter.capacity.sequences, 1);
  EXPECT_EQ(quarter.capacity.longest_tokens, 199680);
  EXPECT_DOUBLE_EQ(quarter.ratio_to_full_f16, 0.625);  // (32 + 128) / (128 + 128)
}

TEST(CapacityPlan, Llama3_8B_On24GiBWithInt4Keys) {
  const ModelConfig c = config_file("llama-3-8b.json");
  PlanOptions o =
      options(std::size_t{24} << 30, {4096, 32768, 131072}, {CacheDType::F16, CacheDType::Int4});
  o.keys = {{}};
  const CapacityPlan p = plan_capacity(c, o);
  // bf16 weights 2 x 8,030,261,248; budget 25,769,803,776 - 16,060,522,496 - 1 GiB.
  EXPECT_EQ(p.cache_budget_bytes, 8635539456u);
  const PlanRow& f16 = p.tables[0].rows[0];
  EXPECT_EQ(f16.key_bytes_per_token + f16.value_bytes_per_token, 131072u);
  // 8,388,608 B blocks: 1029 fit; 4096 tokens take 64, 32768 take 512.
  EXPECT_EQ(f16.capacity.sequences, 16);
  EXPECT_EQ(p.tables[1].rows[0].capacity.sequences, 2);
  EXPECT_EQ(p.tables[2].rows[0].capacity.sequences, 0);
  EXPECT_EQ(f16.capacity.longest_tokens, 1029 * 64);
  // int4 keys: 32 layers x 8 heads x (64 + 4 scales x 2) = 18,432 B; values 65,536.
  const PlanRow& int4 = p.tables[0].rows[1];
  EXPECT_EQ(int4.key_bytes_per_token, 18432u);
  EXPECT_EQ(int4.value_bytes_per_token, 65536u);
  // 5,373,952 B blocks: 1606 fit, 25 sequences of 64 blocks.
  EXPECT_EQ(int4.capacity.sequences, 25);
  EXPECT_DOUBLE_EQ(int4.ratio_to_full_f16, 83968.0 / 131072.0);
}

// --weights int8 / int4 count the levels and their f16 scales, as the
// runtime holds them: 1 + 2/64 and 1/2 + 2/32 bytes a weight.
TEST(CapacityPlan, Int8AndInt4WeightsCountTheirScales) {
  const ModelConfig c = config_file("llama-3-8b.json");
  PlanOptions o = options(std::size_t{24} << 30, {4096}, {CacheDType::F16});
  o.keys = {{}};
  o.weights = "int4";
  const CapacityPlan q4 = plan_capacity(c, o);
  // 8,030,261,248 x 0.5625 = 4,517,021,952; the budget 24 GiB - that - 1 GiB.
  EXPECT_EQ(q4.weight_bytes, 4517021952u);
  EXPECT_EQ(q4.cache_budget_bytes, 25769803776u - 4517021952u - (1u << 30));
  EXPECT_EQ(q4.weight_dtype, "int4");
  o.weights = "int8";
  // 8,030,261,248 x 1.03125 = 8,281,206,912.
  EXPECT_EQ(plan_capacity(c, o).weight_bytes, 8281206912u);
  o.weights = "int3";
  EXPECT_THROW(plan_capacity(c, o), Error);
}

TEST(CapacityPlan, ThinKeysWithARankPerLayer) {
  const ModelConfig c = config_file("thin-per-layer.json");
  PlanOptions o =
      options(std::size_t{64} << 20, {1000}, {CacheDType::F16, CacheDType::Int8, CacheDType::Int4});
  o.reserve_bytes = 0;
  o.weights = "none";
  const CapacityPlan p = plan_capacity(c, o);
  ASSERT_EQ(p.tables[0].rows.size(), 3u);  // the configured ranks only
  const PlanRow &f16 = p.tables[0].rows[0], &int8 = p.tables[0].rows[1],
                &int4 = p.tables[0].rows[2];
  EXPECT_EQ(f16.keys, "ranks 8-64");
  // Ranks 8, 24, 40, 64 on 2 KV heads; values 2 x 64 per layer.
  EXPECT_EQ(f16.key_bytes_per_token, 2u * 2 * (8 + 24 + 40 + 64));
  EXPECT_EQ(f16.value_bytes_per_token, 4u * 2 * 128);
  // int8 rows: r + one scale per 32 values: 8+2, 24+2, 40+4, 64+4.
  EXPECT_EQ(int8.key_bytes_per_token, 2u * (10 + 26 + 44 + 68));
  // int4: ceil(r/2) + scales: 4+2, 12+2, 20+4, 32+4.
  EXPECT_EQ(int4.key_bytes_per_token, 2u * (6 + 14 + 24 + 36));
  // The same budget in a real pool of this model's layers holds exactly as many.
  for (const PlanRow& r : p.tables[0].rows) {
    CacheSpec spec = spec_of(r.key_dtype, r.value_dtype, 64, p.cache_budget_bytes);
    EXPECT_EQ(r.capacity.sequences, sequences_that_reserve(cache_shape(c), spec, 1000))
        << to_string(r.key_dtype);
  }
  // A rank wider than the head is refused by name.
  o.keys = {{KeyChoice::Kind::Rank, 1, 65}};
  try {
    plan_capacity(c, o);
    FAIL() << "rank 65 on 64-wide heads was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("larger than the head"), std::string::npos) << e.what();
  }
}

TEST(CapacityPlan, RatiosAndRanksReplaceTheKeyWidth) {
  const ModelConfig c = config_file("llama-3-8b.json");
  PlanOptions o = options(std::size_t{1} << 40, {4096});
  o.keys = {{KeyChoice::Kind::Ratio, 0.5},
            {KeyChoice::Kind::Ratio, 0.125},
            {KeyChoice::Kind::Rank, 1, 24}};
  const auto rows = plan_capacity(c, o).tables[0].rows;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].keys, "d/2 64");
  EXPECT_EQ(rows[0].key_bytes_per_token, 32u * 8 * 64 * 2);
  EXPECT_EQ(rows[1].keys, "d/8 16");
  EXPECT_EQ(rows[2].keys, "rank 24");
  EXPECT_EQ(rows[2].key_bytes_per_token, 32u * 8 * 24 * 2);
  o.keys = {{KeyChoice::Kind::Ratio, 1.5}};
  EXPECT_THROW(plan_capacity(c, o), Error);
}

TEST(CapacityPlan, MlaAndLrkvAreCountedInThePagedCache) {
  // MLA: one cached row of latent 96 + RoPE key 32 per layer, no value rows
  // (the values read the latent in place): 4 x 128 x 2 = 1024 B/token in f16,
  // against 4 x 4 heads x 64 x 2 x 2 = 4096 for full f16 keys and values. A
  // 64-token block holds 4 x 128 x 2 x 64 = 65,536 B, 64 blocks a sequence.
  PlanOptions o = options(std::size_t{1} << 30, {4096}, {CacheDType::F16, CacheDType::Int8});
  o.weights = "none";
  o.reserve_bytes = 0;
  const CapacityPlan mla = plan_capacity(config_file("mla-small.json"), o);
  ASSERT_EQ(mla.tables[0].rows.size(), 1u);  // int8 keys refused: the values read them
  const PlanRow& m = mla.tables[0].rows[0];
  EXPECT_EQ(m.keys, "MLA latent 128");
  EXPECT_EQ(m.key_bytes_per_token, 1024u);
  EXPECT_EQ(m.value_bytes_per_token, 0u);
  EXPECT_EQ(m.capacity.bytes_per_sequence, 64u * 65536);
  EXPECT_EQ(m.capacity.sequences, (1 << 30) / (64 * 65536));
  EXPECT_DOUBLE_EQ(m.ratio_to_full_f16, 0.25);
  o.key_dtypes = {CacheDType::Int8};
  EXPECT_THROW(plan_capacity(config_file("mla-small.json"), o), Error);
  // LRKV rank 12 over 4 heads: shared 64 + 4 x 12 = 112 wide keys and values;
  // int8 keys are paged too (112 bytes and 4 scales of 32 values).
  o.key_dtypes = {CacheDType::F16, CacheDType::Int8};
  const auto lrkv = plan_capacity(config_file("lrkv-small.json"), o).tables[0].rows;
  ASSERT_EQ(lrkv.size(), 2u);
  EXPECT_EQ(lrkv[0].key_bytes_per_token, 4u * 112 * 2);
  EXPECT_EQ(lrkv[0].value_bytes_per_token, 4u * 112 * 2);
  EXPECT_EQ(lrkv[1].key_bytes_per_token, 4u * (112 + 4 * 2));
}

// MLA's per-head up maps (kv_b_proj: 4 layers x 4 heads x (64 + 64) x 96
// = 196,608 weights) are held as bf16 beside int8 or int4 matrices, not
// packed: 2 bytes each, the rest at int8's 1 + 2/64 or int4's 0.5 + 2/32.
TEST(CapacityPlan, MlaMapsCountAsBf16BesidePackedWeights) {
  const ModelConfig c = config_file("mla-small.json");
  PlanOptions o = options(std::size_t{1} << 30, {1024});
  o.reserve_bytes = 0;
  o.weights = "bf16";
  const CapacityPlan bf16 = plan_capacity(c, o);
  const double total = static_cast<double>(bf16.weight_bytes) / 2, maps = 196608;
  EXPECT_EQ(bf16.parameters.float_maps, 196608);
  o.weights = "int8";
  EXPECT_EQ(plan_capacity(c, o).weight_bytes,
            static_cast<std::size_t>((total - maps) * (1 + 2.0 / 64) + maps * 2));
  o.weights = "int4";
  EXPECT_EQ(plan_capacity(c, o).weight_bytes,
            static_cast<std::size_t>((total - maps) * (0.5 + 2.0 / 32) + maps * 2));
  o.weights = "f32";
  EXPECT_EQ(plan_capacity(c, o).weight_bytes, bf16.weight_bytes * 2);
}

TEST(CapacityPlan, DecodeFloorFromTheBytesAStepReads) {
  const ModelConfig c = config_file("llama-2-7b.json");
  PlanOptions o = options(80000000000, {4096});
  o.keys = {{}};
  o.bandwidth_gb_per_s = 100;
  const PlanRow& r = plan_capacity(c, o).tables[0].rows[0];
  // f16 weights but the embedding table: 2 x (6,738,415,616 - 32000 x 4096)
  // = 13,214,687,232 B; 4096 tokens of K and V: 2,147,483,648 B; at 1e11 B/s.
  EXPECT_NEAR(*r.step_ms_one, (13214687232.0 + 2147483648.0) / 1e11 * 1e3, 1e-9);
  // All 30 sequences (1950 blocks / 64) at once share one read of the weights.
  ASSERT_EQ(r.capacity.sequences, 30);
  EXPECT_NEAR(*r.token_ms_full_batch, (13214687232.0 + 30 * 2147483648.0) / 1e11 * 1e3 / 30, 1e-9);
  // Mistral's window: a step at 32K reads only 4096 tokens of its cache.
  PlanOptions w = options(80000000000, {32768});
  w.keys = {{}};
  w.bandwidth_gb_per_s = 100;
  const CapacityPlan mistral = plan_capacity(config_file("mistral-7b-v0.1.json"), w);
  const double weights = 2.0 * (7241732096.0 - 32000.0 * 4096);
  EXPECT_NEAR(*mistral.tables[0].rows[0].step_ms_one, (weights + 4096 * 131072.0) / 1e11 * 1e3,
              1e-9);
}

TEST(CapacityPlan, BadInputGetsOneClearMessage) {
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message([] { config_file("missing-layers.json"); }).find("num_hidden_layers"),
            std::string::npos);
  const std::string small = message([] {
    plan_capacity(config_file("llama-2-7b.json"), options(std::size_t{12} << 30, {4096}));
  });
  EXPECT_NE(small.find("leaves nothing for the KV cache"), std::string::npos) << small;
  EXPECT_NE(small.find("weights take"), std::string::npos) << small;
  EXPECT_NE(message([] { config_file("no-such.json"); }).find("not found"), std::string::npos);
  EXPECT_NE(message([] {
              plan_capacity(config_file("llama-2-7b.json"), options(std::size_t{1} << 40, {0}));
            }).find("context length must be positive"),
            std::string::npos);
}

TEST(PlanReport, TextAndJsonCarryTheRows) {
  PlanOptions o = options(80000000000, {128000});
  const CapacityPlan p = plan_capacity(config_file("llama-2-7b.json"), o);
  const std::string text = plan_table_text(p, "llama-2-7b.json");
  EXPECT_NE(text.find("context 128000 tokens *"), std::string::npos) << text;
  EXPECT_NE(text.find("67.1 GB"), std::string::npos) << text;
  EXPECT_NE(text.find("41.9 GB"), std::string::npos) << text;
  const std::string json = plan_json(p, "llama-2-7b.json");
  EXPECT_NE(json.find("\"bytes_per_sequence\": 67108864000"), std::string::npos) << json;
  EXPECT_NE(json.find("\"sequences\": 1"), std::string::npos) << json;
}

}  // namespace
}  // namespace thinkeys

// Capacity planning: the cache footprint and sequence counts against
// figures derived by hand from the layout rules (cache_dtype.h,
// cache_footprint.h), and against what a real PagedKVCache of the same
// budget lets sequences reserve. Torch-free.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cache/paged_kv_cache.h"
#include "plan/byte_size.h"
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

}  // namespace
}  // namespace thinkeys

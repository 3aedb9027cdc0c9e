// Paged KV cache: byte accounting against independent arithmetic and the
// kernel's own books (/proc/self/maps), block reuse, exhaustion, and row encodings.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "cache/paged_kv_cache.h"
#include "format/half_rows.h"
#include "format/row_codec.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::size_t round64(std::size_t n) { return (n + 63) / 64 * 64; }

std::vector<float> random_row(std::mt19937& rng, int w, float sd = 1.0f) {
  std::normal_distribution<float> N(0.0f, sd);
  std::vector<float> x(w);
  for (auto& v : x) v = N(rng);
  return x;
}

TEST(RowFormat, BytesIncludeScales) {
  // f16 row of 128: 256 bytes; int8: 128 + 4 f16 scales of 32; int4: 64 + 4 * 2.
  EXPECT_EQ(make_row_format(CacheDType::F16, 128).bytes(), 256u);
  EXPECT_EQ(make_row_format(CacheDType::BF16, 128).bytes(), 256u);
  EXPECT_EQ(make_row_format(CacheDType::F32, 3).bytes(), 12u);
  EXPECT_EQ(make_row_format(CacheDType::Int8, 128).bytes(), 128u + 8u);
  EXPECT_EQ(make_row_format(CacheDType::Int4, 128).bytes(), 64u + 8u);
  // Odd widths and groups larger than the row: one scale, rounded-up nibbles.
  EXPECT_EQ(make_row_format(CacheDType::Int4, 3).bytes(), 2u + 2u);
  EXPECT_EQ(make_row_format(CacheDType::Int8, 1).bytes(), 1u + 2u);
  EXPECT_EQ(make_row_format(CacheDType::Int4, 100, 64).bytes(), 50u + 4u);
  // Thin r = d/4 int4 keys against full-width f16 keys: 16x fewer data bytes;
  // with one f16 scale per 32 values the row is 18 bytes, 256 / 18 = 14.2x.
  RowFormat thin = make_row_format(CacheDType::Int4, 32),
            full = make_row_format(CacheDType::F16, 128);
  EXPECT_EQ(full.data_bytes(), 16 * thin.data_bytes());
  EXPECT_EQ(thin.bytes(), 18u);
  EXPECT_THROW(parse_cache_dtype("int3"), Error);
  EXPECT_EQ(parse_cache_dtype("bf16"), CacheDType::BF16);
}

TEST(RowFormat, HadamardRotationIsOrthogonalAndSelfInverse) {
  // By hand: H_4 [1, 2, 3, 4] = [1+2+3+4, 1-2+3-4, 1+2-3-4, 1-2-3+4] / 2.
  float x[4] = {1, 2, 3, 4};
  hadamard_rotate(x, 4);
  EXPECT_FLOAT_EQ(x[0], 5.0f);
  EXPECT_FLOAT_EQ(x[1], -1.0f);
  EXPECT_FLOAT_EQ(x[2], -2.0f);
  EXPECT_FLOAT_EQ(x[3], 0.0f);
  std::mt19937 rng(5);
  for (int n : {2, 8, 32, 128}) {
    auto v = random_row(rng, n);
    std::vector<float> y = v;
    hadamard_rotate(y.data(), n);
    double n0 = 0, n1 = 0;
    for (int i = 0; i < n; ++i) n0 += v[i] * v[i], n1 += y[i] * y[i];
    EXPECT_NEAR(n1, n0, 1e-4 * n0);
    hadamard_rotate(y.data(), n);
    for (int i = 0; i < n; ++i) EXPECT_NEAR(y[i], v[i], 1e-5);
  }
}

TEST(RowFormat, RotatedRowsRoundTripWithinTheStepInL2) {
  // Only power-of-two quantized widths rotate. H is orthogonal, so the
  // decoded row's L2 error equals the stored one's: at most the sum over
  // elements of (step / 2)^2, steps from the stored group scales.
  EXPECT_FALSE(make_row_format(CacheDType::F16, 8, 32, true).rotated);
  EXPECT_FALSE(make_row_format(CacheDType::Int4, 12, 32, true).rotated);
  EXPECT_FALSE(make_row_format(CacheDType::Int4, 8, 32, false).rotated);
  std::mt19937 rng(9);
  for (CacheDType t : {CacheDType::Int8, CacheDType::Int4})
    for (int w : {2, 8, 16, 64})
      for (int group : {4, 32}) {
        RowFormat f = make_row_format(t, w, group, true);
        ASSERT_TRUE(f.rotated);
        auto x = random_row(rng, w, 2.0f);
        x[w / 2] = 40.0f;  // an outlier channel
        std::vector<std::byte> buf(f.bytes());
        std::vector<float> y(w);
        encode_row(f, x.data(), buf.data());
        decode_row(f, buf.data(), y.data());
        double err = 0, bound = 0;
        for (int i = 0; i < w; ++i) {
          err += (x[i] - y[i]) * (x[i] - y[i]);
          const double s = row_scale(f, buf.data(), i / f.group);
          bound += s * s / 4;
        }
        EXPECT_LE(err, bound * (1 + 1e-4) + 1e-10) << to_string(t) << " w=" << w;
      }
}

TEST(RowFormat, HalfToFloatAgreesWithTheCompilerOnEveryPattern) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    _Float16 h;
    const uint16_t b = static_cast<uint16_t>(bits);
    std::memcpy(&h, &b, 2);
    const float want = static_cast<float>(h), got = f16_to_f32(b);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << bits;
    } else {
      EXPECT_EQ(std::memcmp(&want, &got, 4), 0) << bits << ": " << want << " vs " << got;
    }
  }
}

TEST(RowFormat, WholeRowF16ConversionEqualsTheScalarOne) {
  // Every f16 value, the midpoints between neighbours (ties to even), values
  // just beside the midpoints, f16 subnormals and past the largest half
  // (infinity); an odd length leaves a tail shorter than a vector.
  std::vector<float> x;
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint16_t b = static_cast<uint16_t>(bits);
    if ((b & 0x7C00u) == 0x7C00u) continue;  // inf and NaN
    const float f = f16_to_f32(b);
    const uint16_t up = static_cast<uint16_t>(b + 1);
    x.push_back(f);
    if ((up & 0x7C00u) != 0x7C00u && (b & 0x8000u) == (up & 0x8000u)) {
      const float mid = (f + f16_to_f32(up)) / 2;
      x.push_back(mid);
      x.push_back(std::nextafter(mid, 1e9f));
      x.push_back(std::nextafter(mid, -1e9f));
    }
  }
  for (float big : {65504.0f, 65519.0f, 65520.0f, 1e6f, -7e4f, 3e-8f, -2.9e-8f}) x.push_back(big);
  x.push_back(0.5f);  // odd total length
  if (x.size() % 2 == 0) x.push_back(1.0f);
  std::vector<std::byte> got(2 * x.size());
  f32_to_f16_row(x.data(), x.size(), got.data());
  int differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    uint16_t g;
    std::memcpy(&g, got.data() + 2 * i, 2);
    differ += g != f32_to_f16(x[i]);
  }
  EXPECT_EQ(differ, 0) << "of " << x.size();
}

TEST(RowFormat, ScaleIsTheSmallestHalfAtOrAboveTheExactOne) {
  // Hand-derived halves: 1.0 is exact; 1 + 2^-12 lies between 1 and the
  // next half 1 + 2^-10; 0.1 rounds to 0x2E66 = 0.0999755859375 < 0.1, so the
  // scale is 0x2E67 = 0.10003662109375; 1e-9 is below every normal half and
  // becomes the smallest subnormal 2^-24; past 65504 the scale saturates.
  EXPECT_EQ(f16_scale_at_least(1.0f), 0x3C00);
  EXPECT_EQ(f16_scale_at_least(1.0f + std::ldexp(1.0f, -12)), 0x3C01);
  EXPECT_EQ(f16_scale_at_least(0.1f), 0x2E67);
  EXPECT_FLOAT_EQ(f16_to_f32(0x2E67), 0.10003662109375f);
  EXPECT_EQ(f16_scale_at_least(1e-9f), 0x0001);
  EXPECT_EQ(f16_scale_at_least(1e6f), 0x7BFF);
  EXPECT_EQ(f16_scale_at_least(0.0f), 0);
}

TEST(RowFormat, RoundTripWithinQuantizationStep) {
  std::mt19937 rng(1);
  for (CacheDType t :
       {CacheDType::F32, CacheDType::F16, CacheDType::BF16, CacheDType::Int8, CacheDType::Int4})
    for (int w : {1, 2, 3, 7, 8, 31, 33, 64, 100, 128})
      for (int group : {8, 32}) {
        RowFormat f = make_row_format(t, w, group);
        auto x = random_row(rng, w, 3.0f);
        std::vector<std::byte> buf(f.bytes() + 16);
        std::vector<float> y(w);
        encode_row(f, x.data(), buf.data());
        decode_row(f, buf.data(), y.data());
        for (int i = 0; i < w; ++i) {
          double bound;
          if (t == CacheDType::F32)
            bound = 0;
          else if (t == CacheDType::F16)
            bound = std::ldexp(std::fabs(x[i]), -11);
          else if (t == CacheDType::BF16)
            bound = std::ldexp(std::fabs(x[i]), -8);
          else {
            // s = max|x in group| / levels; the stored f16 scale is at least
            // s and less than one half-precision step (2^-10 relative) above.
            int g = i / f.group;
            float amax = 0;
            for (int j = g * f.group; j < std::min(w, (g + 1) * f.group); ++j)
              amax = std::max(amax, std::fabs(x[j]));
            const double s = amax / f.levels(), stored = row_scale(f, buf.data(), g);
            EXPECT_GE(stored, s);
            EXPECT_LE(stored, s * (1 + std::ldexp(1.0, -10)));
            bound = stored / 2 * (1 + 1e-5);
          }
          EXPECT_LE(std::fabs(x[i] - y[i]), bound + 1e-12)
              << to_string(t) << " w=" << w << " i=" << i;
        }
      }
}

std::vector<CacheLayerShape> thin_model_shape() {
  // Three layers with different thin ranks, GQA (8 query heads would read 2 KV heads).
  return {{2, 16, 2, 64}, {2, 3, 2, 64}, {2, 64, 2, 64}};
}

TEST(PagedKVCache, AccountingMatchesLayout) {
  for (CacheDType kt : {CacheDType::F16, CacheDType::Int4, CacheDType::Int8})
    for (CacheDType vt : {CacheDType::F32, CacheDType::BF16, CacheDType::Int8}) {
      CacheSpec spec{kt, vt, 32, 16, 1 << 20};
      PagedKVCache cache(thin_model_shape(), spec);
      std::size_t block = 0, payload = 0;
      for (const auto& L : thin_model_shape()) {
        const std::size_t kb = make_row_format(kt, L.key_width).bytes();
        const std::size_t vb = make_row_format(vt, L.value_width).bytes();
        block += L.key_heads * round64(16 * kb) + L.value_heads * round64(16 * vb);
        payload += L.key_heads * kb + L.value_heads * vb;
      }
      block = round64(block);
      EXPECT_EQ(cache.block_bytes(), block);
      EXPECT_EQ(cache.payload_bytes_per_token(), payload);
      EXPECT_DOUBLE_EQ(cache.bytes_per_token(), block / 16.0);
      EXPECT_EQ(cache.total_blocks(), static_cast<int>((1 << 20) / block));
      EXPECT_EQ(cache.capacity_bytes(), cache.total_blocks() * block);
      EXPECT_EQ(cache.used_bytes(), 0u);

      int a = cache.add_sequence(), b = cache.add_sequence();
      cache.reserve(a, 1);
      cache.reserve(b, 33);  // 3 blocks
      cache.reserve(a, 16);  // still 1
      EXPECT_EQ(cache.blocks_of(a), 1);
      EXPECT_EQ(cache.blocks_of(b), 3);
      EXPECT_EQ(cache.used_bytes(), 4 * block);
      EXPECT_EQ(cache.free_blocks(), cache.total_blocks() - 4);
      cache.remove_sequence(b);
      EXPECT_EQ(cache.used_bytes(), block);
      cache.remove_sequence(a);
      EXPECT_EQ(cache.used_bytes(), 0u);
      EXPECT_EQ(cache.free_blocks(), cache.total_blocks());
    }
}

TEST(PagedKVCache, DesignDocumentCacheSizes) {
  // docs/design.md section 7: 7B MHA (L=32, H=32, d=128) at 128,000 tokens, f16.
  auto shape = [](int r) { return std::vector<CacheLayerShape>(32, {32, r, 32, 128}); };
  CacheSpec spec{CacheDType::F16, CacheDType::F16, 32, 16, std::size_t{1} << 30};
  PagedKVCache full(shape(128), spec), thin(shape(32), spec);
  EXPECT_NEAR(full.payload_bytes_per_token() * 128000.0 / 1e9, 67.1, 0.1);
  EXPECT_NEAR(thin.payload_bytes_per_token() * 128000.0 / 1e9, 41.9, 0.1);
  // Rows are multiples of 64 bytes here, so blocks carry no padding.
  EXPECT_DOUBLE_EQ(full.bytes_per_token(), full.payload_bytes_per_token());
}

// The kernel's own record of the pool's mapping: the /proc/self/maps range
// holding `p`, or {0, 0}.
std::pair<uintptr_t, uintptr_t> mapping_of(const void* p) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && lo <= a && a < hi) return {lo, hi};
  }
  return {0, 0};
}

TEST(PagedKVCache, PoolBytesAreWhatTheKernelMapped) {
  // Int4 keys of 32 values: rows are not multiples of 64 bytes, so blocks
  // carry padding and the pool does not end on a page boundary by itself.
  CacheSpec spec{CacheDType::Int4, CacheDType::F16, 32, 32, std::size_t{48} << 20};
  for (bool huge : {true, false}) {
    spec.huge_pages = huge;
    uintptr_t lo = 0, hi = 0;
    {
      PagedKVCache cache(thin_model_shape(), spec);
      int id = cache.add_sequence();
      cache.reserve(id, 1);
      // Lowest id, first layer: the pool's start.
      const std::byte* base = cache.block_data(id, 0, 0);
      std::tie(lo, hi) = mapping_of(base);
      // madvise gives the pool its own mapping; without it the kernel may
      // merge it with a neighbour, so only containment can be checked.
      if (huge && cache.huge_pages()) {
        EXPECT_EQ(lo, reinterpret_cast<uintptr_t>(base));
        EXPECT_EQ(hi - lo, cache.allocated_bytes());
      } else {
        EXPECT_LE(lo, reinterpret_cast<uintptr_t>(base));
        EXPECT_GE(hi, reinterpret_cast<uintptr_t>(base) + cache.allocated_bytes());
      }
      EXPECT_EQ(reinterpret_cast<uintptr_t>(base) % (std::size_t{2} << 20), 0u);
      const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
      EXPECT_EQ(cache.allocated_bytes() % page, 0u);
      EXPECT_GE(cache.allocated_bytes(), cache.capacity_bytes() + BlockPool::kTailSlack);
      EXPECT_LT(cache.allocated_bytes(), cache.capacity_bytes() + BlockPool::kTailSlack + page);
      EXPECT_LE(cache.capacity_bytes(), spec.budget_bytes);
      EXPECT_GT(cache.capacity_bytes() + cache.block_bytes(), spec.budget_bytes);
    }
    if (huge) {
      EXPECT_NE(lo, 0u);
      // Unmapped on destruction: nothing of it is left in the address space.
      EXPECT_EQ(mapping_of(reinterpret_cast<const void*>(lo)).second, 0u);
    }
  }
}

TEST(PagedKVCache, BlocksNeverOverlap) {
  BlockPool pool(1000, 64 * 1024);
  EXPECT_EQ(pool.block_bytes(), 1024u);
  std::vector<int> ids;
  pool.take(pool.total_blocks(), ids);
  std::set<const std::byte*> seen;
  const std::byte* lo = pool.data(0);
  for (int id : ids) {
    const std::byte* p = pool.data(id);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    EXPECT_GE(p, lo);
    EXPECT_LE(p + pool.block_bytes(), lo + pool.capacity_bytes());
    EXPECT_TRUE(seen.insert(p).second);
  }
  EXPECT_THROW(pool.give(-1), Error);
  pool.give(ids[0]);
  EXPECT_THROW(pool.give(ids[0]), Error);  // double return
}

// Keys by channel: channel j of a block's token slot i is element
// j * block_tokens + i of the head's part of the block, and int8 scale g of
// slot i is scale g * block_tokens + i after the elements; written by
// write_key, read back by read_key and stored_row. int4 keys stay token by
// token, and keys_by_channel = false keeps every dtype so.
TEST(PagedKVCache, KeysAreStoredChannelByChannel) {
  const int bt = 8, w = 5;
  for (CacheDType kt :
       {CacheDType::F32, CacheDType::F16, CacheDType::BF16, CacheDType::Int8, CacheDType::Int4})
    for (bool by_channel : {true, false}) {
      CacheSpec spec{kt, CacheDType::F32, 2, bt, 1 << 20};  // int8: groups of 2 channels
      spec.keys_by_channel = by_channel;
      PagedKVCache cache({{2, w, 2, 4}}, spec);
      const int id = cache.add_sequence();
      cache.reserve(id, 2 * bt);
      const bool expect = by_channel;
      EXPECT_EQ(cache.keys_by_channel(0), expect);
      auto value = [](int h, int t, int j) { return 16.0f * h + 2.0f * j + 0.125f * t; };
      for (int h = 0; h < 2; ++h)
        for (int t = 0; t < 2 * bt; ++t) {
          float row[w];
          for (int j = 0; j < w; ++j) row[j] = value(h, t, j);  // exact in bf16
          cache.write_key(id, 0, h, t, row);
        }
      const RowFormat& f = cache.key_format(0);
      for (int h = 0; h < 2; ++h)
        for (int t = 0; t < 2 * bt; ++t) {
          const PagedRows k = cache.keys(id, 0, h);
          ASSERT_EQ(k.by_channel, expect);
          // What encode_row makes of the row, against what the cache holds.
          float row[w];
          for (int j = 0; j < w; ++j) row[j] = value(h, t, j);
          std::vector<std::byte> encoded(f.bytes()), stored(f.bytes());
          encode_row(f, row, encoded.data());
          stored_row(k, t, stored.data());
          EXPECT_EQ(stored, encoded) << h << " " << t;
          float got[w], want[w];
          cache.read_key(id, 0, h, t, got);
          decode_row(f, encoded.data(), want);
          for (int j = 0; j < w; ++j) {
            EXPECT_EQ(got[j], want[j]) << h << " " << t << " " << j;
            if (!is_quantized(kt)) EXPECT_EQ(got[j], value(h, t, j));
          }
          if (!expect) {
            EXPECT_EQ(k.row(t), k.part(t) + f.bytes() * (t % bt));
            continue;
          }
          // Each stored byte (int4: nibble) at its documented place.
          const int slot = t % bt;
          std::size_t levels = 0;  // bytes before the scales
          if (kt == CacheDType::Int4) {
            // Row element j: low nibble of byte j for j < 3 (ceil(5 / 2)),
            // else high nibble of byte j - 3. Channel j of the part: bt / 2
            // bytes, slot s < 4 in the low nibble of byte s, else the high
            // nibble of byte s - 4.
            auto nib = [](const std::byte* p, int byte, bool high) {
              const auto b = std::to_integer<int>(p[byte]);
              return high ? b >> 4 : b & 15;
            };
            for (int j = 0; j < w; ++j)
              EXPECT_EQ(nib(k.part(t) + j * (bt / 2), slot < bt / 2 ? slot : slot - bt / 2,
                            slot >= bt / 2),
                        nib(encoded.data(), j < 3 ? j : j - 3, j >= 3))
                  << h << " " << t << " " << j;
            levels = w * (bt / 2);
          } else {
            const std::size_t es = k.element_bytes();
            for (int j = 0; j < w; ++j)
              EXPECT_EQ(std::memcmp(k.part(t) + es * (j * bt + slot), encoded.data() + es * j, es),
                        0);
            levels = f.data_bytes() * bt;
          }
          for (int g = 0; g < f.groups(); ++g)
            EXPECT_EQ(std::memcmp(k.part(t) + levels + 2 * (g * bt + slot),
                                  encoded.data() + f.scale_offset() + 2 * g, 2),
                      0);
          // Either way the head's keys fill exactly its own part of the block.
          EXPECT_EQ(k.part(t),
                    cache.block_data(id, 0, t / bt) + h * (cache.layer_block_bytes(0) / 2));
        }
      float sink[w];
      EXPECT_THROW(cache.read_key(id, 0, 0, 2 * bt, sink), Error);
      EXPECT_THROW(cache.read_key(id, 0, 2, 0, sink), Error);
      EXPECT_THROW(cache.read_key(id, 1, 0, 0, sink), Error);
      EXPECT_THROW(cache.read_value(id, 0, 0, -1, sink), Error);
    }
  // int4 channels of an odd block would need half a byte more than the
  // part holds: such keys stay token by token.
  CacheSpec odd{CacheDType::Int4, CacheDType::F32, 2, 5, 1 << 20};
  PagedKVCache cache({{2, w, 2, 4}}, odd);
  EXPECT_FALSE(cache.keys_by_channel(0));
  odd.key_dtype = CacheDType::Int8;
  EXPECT_TRUE(PagedKVCache({{2, w, 2, 4}}, odd).keys_by_channel(0));
}

TEST(PagedKVCache, EveryRowHasItsOwnBytesAndValuesFollowTheirKeyHead) {
  // Two layers; the first shares one key head between two value heads
  // (latent-mode GQA), the second is plain thin keys. Row byte ranges of all
  // (head, token) of a layer must tile that layer's part of the block
  // without overlap, and the value runs of a key head's group must start
  // where its key run (cache-line padded) ends, so a decode task reads one
  // contiguous run per block.
  const std::vector<CacheLayerShape> shape = {{2, 3, 4, 16}, {4, 8, 4, 16}};
  CacheSpec spec{CacheDType::Int4, CacheDType::BF16, 32, 8, 1 << 20};
  PagedKVCache cache(shape, spec);
  const int id = cache.add_sequence();
  cache.reserve(id, 16);
  std::size_t sections = 0;
  for (int l = 0; l < 2; ++l) {
    std::vector<std::pair<const std::byte*, const std::byte*>> ranges;
    const std::byte* b0 = cache.block_data(id, l, 0);
    const std::size_t kb = cache.key_format(l).bytes(), vb = cache.value_format(l).bytes();
    const int share = shape[l].value_heads / shape[l].key_heads;
    for (int h = 0; h < shape[l].key_heads; ++h) {
      const std::byte* k0 = cache.keys(id, l, h).row(0);
      for (int j = 0; j < share; ++j)
        EXPECT_EQ(cache.values(id, l, h * share + j).row(0),
                  k0 + round64(8 * kb) + j * round64(8 * vb))
            << "layer " << l << " key head " << h << " value " << j;
      for (int t = 0; t < 8; ++t) {
        const std::byte* p = cache.keys(id, l, h).row(t);
        ranges.push_back({p, p + kb});
      }
    }
    for (int h = 0; h < shape[l].value_heads; ++h)
      for (int t = 0; t < 8; ++t) {
        const std::byte* p = cache.values(id, l, h).row(t);
        ranges.push_back({p, p + vb});
      }
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      EXPECT_GE(ranges[i].first, b0);
      EXPECT_LE(ranges[i].second, b0 + cache.layer_block_bytes(l));
      if (i > 0) EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "rows overlap";
    }
    // The layer's part of the sequence's next block (the next id of a fresh
    // pool) follows it directly: one layer of consecutive blocks is one run.
    EXPECT_EQ(cache.block_data(id, l, 1), b0 + cache.layer_block_bytes(l));
    // Token 8 is row 0 of the second block.
    EXPECT_EQ(cache.keys(id, l, 1).row(8) - cache.block_data(id, l, 1),
              cache.keys(id, l, 1).row(0) - b0);
    sections += cache.layer_block_bytes(l);
  }
  // The layers' parts make up the block, whose bytes the pool accounts.
  EXPECT_EQ(sections, cache.block_bytes());
  // Value heads that do not split evenly over key heads have no layout.
  EXPECT_THROW(PagedKVCache({{3, 8, 4, 16}}, spec), Error);
}

TEST(PagedKVCache, LayersLiveInSeparateRegionsAndCopyBlockCopiesEveryLayer) {
  // Rows written to one block appear, after copy_block, in another block of
  // every layer, and nowhere in other sequences.
  const std::vector<CacheLayerShape> shape = {{1, 8, 2, 16}, {2, 4, 2, 16}, {1, 16, 1, 16}};
  CacheSpec spec{CacheDType::F32, CacheDType::F32, 32, 4, 1 << 20};
  PagedKVCache cache(shape, spec);
  const int a = cache.add_sequence(), b = cache.add_sequence();
  cache.reserve(a, 12);
  cache.reserve(b, 4);
  std::vector<float> row(16);
  for (int l = 0; l < 3; ++l)
    for (int h = 0; h < shape[l].key_heads; ++h)
      for (int t = 0; t < 4; ++t) {
        for (int i = 0; i < 16; ++i) row[i] = 1000.0f * l + 100.0f * h + 10.0f * t + i;
        cache.write_key(a, l, h, t, row.data());
        cache.write_value(b, l, h, t, row.data());
      }
  cache.copy_block(a, 0, 2);
  for (int l = 0; l < 3; ++l)
    for (int h = 0; h < shape[l].key_heads; ++h)
      for (int t = 0; t < 4; ++t) {
        std::vector<float> k(shape[l].key_width);
        cache.read_key(a, l, h, 8 + t, k.data());
        for (int i = 0; i < shape[l].key_width; ++i)
          ASSERT_EQ(k[i], 1000.0f * l + 100.0f * h + 10.0f * t + i) << l << " " << h << " " << t;
        const auto* v = reinterpret_cast<const float*>(cache.values(b, l, h).row(t));
        for (int i = 0; i < 16; ++i) ASSERT_EQ(v[i], 1000.0f * l + 100.0f * h + 10.0f * t + i);
      }
  // Layer l's part of a block lies in layer l's region: all of layer 0 comes
  // before all of layer 1, whatever the block.
  EXPECT_LT(cache.block_data(b, 0, 0), cache.block_data(a, 1, 0));
  EXPECT_LT(cache.block_data(a, 0, 2), cache.block_data(b, 1, 0));
  EXPECT_THROW(cache.block_data(a, 3, 0), Error);
  EXPECT_THROW(cache.keys(a, -1, 0), Error);
  // Bad layers and heads get the cache's own error on every path, writes too.
  EXPECT_THROW(cache.write_key(a, 3, 0, 0, row.data()), Error);
  EXPECT_THROW(cache.write_value(a, -1, 0, 0, row.data()), Error);
  EXPECT_THROW(cache.write_key(a, 0, 9, 0, row.data()), Error);
  EXPECT_THROW(cache.write_value(a, 1, -1, 0, row.data()), Error);
  EXPECT_THROW(cache.keys(a, 0, 9), Error);
  EXPECT_THROW(cache.values(a, 1, -1), Error);
}

TEST(PagedKVCache, ExhaustionIsAnErrorAndLeavesOthersIntact) {
  const std::vector<CacheLayerShape> shape = {{1, 8, 1, 16}};
  CacheSpec spec{CacheDType::F32, CacheDType::Int8, 32, 4, 0};
  spec.budget_bytes =
      PagedKVCache(shape, {CacheDType::F32, CacheDType::Int8, 32, 4, 1 << 20}).block_bytes() * 10;
  PagedKVCache cache(shape, spec);
  ASSERT_EQ(cache.total_blocks(), 10);
  std::mt19937 rng(3);
  int a = cache.add_sequence();
  cache.reserve(a, 24);  // 6 blocks
  std::vector<std::vector<float>> keys, values;
  for (int t = 0; t < 24; ++t) {
    keys.push_back(random_row(rng, 8));
    values.push_back(random_row(rng, 16));
    cache.write_key(a, 0, 0, t, keys.back().data());
    cache.write_value(a, 0, 0, t, values.back().data());
  }
  cache.set_length(a, 24);
  auto snapshot = [&] {
    std::vector<float> all;
    for (int t = 0; t < 24; ++t) {
      std::vector<float> k(8), v(16);
      cache.read_key(a, 0, 0, t, k.data());
      cache.read_value(a, 0, 0, t, v.data());
      all.insert(all.end(), k.begin(), k.end());
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  const auto before = snapshot();
  for (int t = 0; t < 24; ++t)
    EXPECT_EQ(std::memcmp(before.data() + t * 24, keys[t].data(), 32), 0);

  int b = cache.add_sequence();
  cache.reserve(b, 8);  // 2 blocks, 2 left
  try {
    cache.reserve(b, 8 + 12);  // needs 3 more
    FAIL() << "expected the pool to run out";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exhausted"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.blocks_of(b), 2);  // nothing half-taken
  EXPECT_EQ(cache.free_blocks(), 2);
  // Writing past what b owns must not land in a's blocks.
  std::vector<float> junk(16, 1e3f);
  EXPECT_THROW(cache.write_key(b, 0, 0, 8, junk.data()), Error);
  EXPECT_THROW(cache.write_value(b, 0, 0, 100, junk.data()), Error);
  EXPECT_THROW(cache.set_length(b, 9), Error);
  for (int t = 0; t < 8; ++t) {
    cache.write_key(b, 0, 0, t, junk.data());
    cache.write_value(b, 0, 0, t, junk.data());
  }
  EXPECT_EQ(snapshot(), before);
  EXPECT_THROW(cache.keys(42, 0, 0), Error);

  // Ending b frees its blocks for a new sequence; a is still untouched.
  cache.remove_sequence(b);
  int c = cache.add_sequence();
  cache.reserve(c, 16);
  EXPECT_EQ(cache.free_blocks(), 0);
  EXPECT_EQ(snapshot(), before);
  EXPECT_THROW(PagedKVCache(shape, CacheSpec{CacheDType::F32, CacheDType::F32, 32, 4, 100}), Error);
}

// Full-width float keys that one query head each reads are stored token by
// token (writing one by channel misses once per channel); keys that several
// queries share, thin or quantized keys, and layers whose readers are not
// known keep the channel layout.
TEST(PagedKVCache, FullKeysOfOneQueryGoTokenByToken) {
  auto by_channel = [](CacheLayerShape s, CacheDType kt) {
    CacheSpec spec{kt, CacheDType::F16, 16, 64, 1 << 22};
    return PagedKVCache({s}, spec).keys_by_channel(0);
  };
  EXPECT_FALSE(by_channel({12, 64, 12, 64, 1}, CacheDType::F16));  // mha, full keys
  EXPECT_FALSE(by_channel({12, 64, 12, 64, 1}, CacheDType::BF16));
  EXPECT_TRUE(by_channel({4, 64, 4, 64, 3}, CacheDType::F16));    // gqa: 3 queries a key
  EXPECT_TRUE(by_channel({12, 16, 12, 64, 1}, CacheDType::F16));  // thin keys
  EXPECT_TRUE(by_channel({12, 64, 12, 64, 1}, CacheDType::Int8));
  EXPECT_TRUE(by_channel({12, 64, 12, 64, 0}, CacheDType::F16));  // readers not known
  // Written and read back exactly through the token layout.
  CacheSpec spec{CacheDType::F16, CacheDType::F16, 16, 4, 1 << 20};
  PagedKVCache cache({{2, 8, 2, 8, 1}}, spec);
  const int id = cache.add_sequence();
  cache.reserve(id, 8);
  for (int t = 0; t < 8; ++t) {
    float row[8], got[8];
    for (int j = 0; j < 8; ++j) row[j] = 0.5f * t - 0.25f * j;  // exact in f16
    cache.write_key(id, 0, 1, t, row);
    cache.read_key(id, 0, 1, t, got);
    for (int j = 0; j < 8; ++j) EXPECT_EQ(got[j], row[j]) << t << " " << j;
    const PagedRows k = cache.keys(id, 0, 1);
    EXPECT_EQ(k.row(t), k.part(t) + 16 * (t % 4));  // a 16-byte f16 row per slot
  }
}

// MLA's layers: no value rows, the values read as the keys' leading elements.
TEST(PagedKVCache, ValuesReadInPlaceFromTheKeys) {
  // 12-wide f16 rows of which the first 8 are the values: 24 bytes a token,
  // nothing for values; 4-token blocks of 96 bytes (one 128-byte aligned run).
  const CacheSpec spec{CacheDType::F16, CacheDType::F16, 16, 4, 1 << 20};
  PagedKVCache cache({{1, 12, 0, 0, 6}}, spec);
  EXPECT_EQ(cache.payload_bytes_per_token(), 24u);
  EXPECT_EQ(cache.block_bytes(), 128u);
  EXPECT_FALSE(cache.keys_by_channel(0));  // the values need whole rows
  const int id = cache.add_sequence();
  cache.reserve(id, 6);
  for (int t = 0; t < 6; ++t) {
    float row[12];
    for (int j = 0; j < 12; ++j) row[j] = 0.25f * t + j;  // exact in f16
    cache.write_key(id, 0, 0, t, row);
  }
  PagedRows values = cache.keys(id, 0, 0);
  values.format = leading_elements(values.format, 8);
  EXPECT_EQ(values.format.bytes(), 24u);  // the key rows' stride, not 8 x 2
  for (int t = 0; t < 6; ++t) {
    float got[8];
    read_row(values, t, got);
    for (int j = 0; j < 8; ++j) EXPECT_EQ(got[j], 0.25f * t + j) << t << " " << j;
  }
  EXPECT_THROW(cache.values(id, 0, 0), Error);
  // A view of quantized rows would misplace their scales; too wide a view is
  // no view.
  EXPECT_THROW(leading_elements(make_row_format(CacheDType::Int8, 12), 8), Error);
  EXPECT_THROW(leading_elements(values.format, 9), Error);
  EXPECT_THROW(PagedKVCache({{1, 12, 0, 0, 6}},
                            CacheSpec{CacheDType::Int8, CacheDType::F16, 16, 4, 1 << 20}),
               Error);
  EXPECT_THROW(PagedKVCache({{1, 12, 0, 8, 6}}, spec), Error);  // values without heads
}

}  // namespace
}  // namespace thinkeys

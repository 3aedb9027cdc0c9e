// Integer scores of int8 keys stored by channel: each step rounds the
// queries to int8 levels (one scale per query), and a block's scores are
// exact int32 dot products of those levels with the keys' levels, scaled once
// per key group. On AVX-512 with VNNI one vpdpbusd multiplies and adds four
// channels of 16 tokens for one query, where the f32 path widens and
// converts every channel vector (two instructions) and then takes one FMA
// per channel and query. Keys by channel hold a channel's tokens next to
// each other, so one vpermb first turns four channels of 16 tokens into 16
// tokens of four channels (the 4-byte groups vpdpbusd sums). vpdpbusd
// multiplies unsigned by signed bytes: key levels (-127..127) are offset by
// 128 (one xor), and 128 x the sum of the query's levels over the group is
// taken off the sums. With 3 queries per key head (gqa), the f32 path's
// 4 x (2 + 3) instructions per four channels become 1 load, 1 vpermb, 1 xor
// and 3 vpdpbusd. Per-target Highway code for decode_attention.cpp; the
// integer path exists on the AVX3 target only (Highway 1.0.3 has no VNNI
// op, and its AVX3_DL target's flags break GCC on Zen 4, see packed_gemm.cpp),
// so the instructions are written as asm and chosen at run time.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "format/paged_rows.h"
#include "kernels/decode_attention.h"
#include "kernels/prefetch_cursor.h"

#if defined(THINKEYS_KERNELS_INT8_CHANNEL_SCORES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_INT8_CHANNEL_SCORES_INL_H_
#undef THINKEYS_KERNELS_INT8_CHANNEL_SCORES_INL_H_
#else
#define THINKEYS_KERNELS_INT8_CHANNEL_SCORES_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
#include "kernels/attention_tiles-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {

// Whether this target on this CPU has the integer score path.
bool IntegerScoresHere() {
#if HWY_TARGET == HWY_AVX3
  static const bool on =
      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi");
  return on;
#else
  return false;
#endif
}

// Whether one task's keys take the integer path: int8 keys stored by
// channel, read as stored (not latent), in scale groups of whole channel
// quads.
bool IntegerScores(const AttentionTask& task, const LatentKeys* latent) {
  const RowFormat& f = task.keys.format;
  return !latent && task.keys.by_channel && f.dtype == CacheDType::Int8 && f.width % 4 == 0 &&
         f.group % 4 == 0 && IntegerScoresHere();
}

// Query g (q + g * ldq, width r, zero up to ldq) as int8 levels
// round(q / s), s = max|q| / 127, and per scale group of `group` channels
// 128 x the sum of its levels. Whole vectors over ldq (a multiple of 16):
// a libm rounding call per element cost as much as the block's scores at
// 1K context.
void QuantizeQueries(const float* q, int ldq, int G, int r, int group, int8_t* levels, int ldl,
                     float* scales, int32_t* offsets, int ldo) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<float> df;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int g = 0; g < G; ++g) {
    const float* qg = q + static_cast<std::size_t>(g) * ldq;
    int8_t* lg = levels + static_cast<std::size_t>(g) * ldl;
    auto top = hn::Zero(df);
    for (int i = 0; i < ldq; i += N) top = hn::Max(top, hn::Abs(hn::LoadU(df, qg + i)));
    const float m = hn::GetLane(hn::MaxOfLanes(df, top));
    scales[g] = m / 127.0f;
    const auto inv = hn::Set(df, m > 0 ? 127.0f / m : 0.0f);
    for (int i = 0; i < ldq; i += N)
      hn::StoreU(hn::DemoteTo(d8, hn::NearestInt(hn::Mul(hn::LoadU(df, qg + i), inv))), d8, lg + i);
    for (int c0 = 0, k = 0; c0 < r; c0 += group, ++k) {
      int32_t sum = 0;
      for (int i = c0; i < std::min(r, c0 + group); ++i) sum += lg[i];
      offsets[g * ldo + k] = 128 * sum;
    }
  }
}

#if HWY_TARGET == HWY_AVX3
// vpermb indices: byte 4t + c of the result is byte 16c + t of four
// channels' 16 tokens.
constexpr std::array<uint8_t, 64> TokenQuadIndex() {
  std::array<uint8_t, 64> idx{};
  for (int t = 0; t < 16; ++t)
    for (int c = 0; c < 4; ++c) idx[4 * t + c] = static_cast<uint8_t>(16 * c + t);
  return idx;
}
alignas(64) inline constexpr std::array<uint8_t, 64> kTokenQuadIndex = TokenQuadIndex();

// Channels c..c+3 of m <= 16 tokens from p (channel stride `stride` bytes),
// as 16 token lanes of four unsigned levels (level + 128); tokens past m
// are 0 (so their sums are exactly the offset, then scaled by 0).
template <bool kContiguous>
HWY_INLINE __m512i LoadQuad(const int8_t* p, std::size_t stride, __mmask64 mask64, __mmask16 mask16,
                            __m512i index, __m512i bias) {
  __m512i x;
  if constexpr (kContiguous) {
    x = _mm512_maskz_loadu_epi8(mask64, p);
  } else {
    x = _mm512_castsi128_si512(_mm_maskz_loadu_epi8(mask16, p));
    x = _mm512_inserti32x4(x, _mm_maskz_loadu_epi8(mask16, p + stride), 1);
    x = _mm512_inserti32x4(x, _mm_maskz_loadu_epi8(mask16, p + 2 * stride), 2);
    x = _mm512_inserti32x4(x, _mm_maskz_loadu_epi8(mask16, p + 3 * stride), 3);
  }
  __m512i t;
  asm("vpermb %1, %2, %0" : "=v"(t) : "v"(x), "v"(index));
  return _mm512_xor_si512(t, bias);
}

// Byte and word indices that turn four channels of a whole 64-token block
// (four 64-byte rows) into four vectors of 16 tokens' quads: vpermt2b pairs
// channels 0/1 and 2/3 token by token (tokens 0-31, then 32-63), vpermt2w
// pairs the pairs (tokens 0-15 and 16-31 of each half).
constexpr std::array<uint8_t, 64> PairIndex(int first) {
  std::array<uint8_t, 64> idx{};
  for (int t = 0; t < 32; ++t)
    for (int c = 0; c < 2; ++c) idx[2 * t + c] = static_cast<uint8_t>(64 * c + first + t);
  return idx;
}
constexpr std::array<uint16_t, 32> QuadIndex(int first) {
  std::array<uint16_t, 32> idx{};
  for (int t = 0; t < 16; ++t)
    for (int c = 0; c < 2; ++c) idx[2 * t + c] = static_cast<uint16_t>(32 * c + first + t);
  return idx;
}
alignas(64) inline constexpr std::array<uint8_t, 64> kPairsLow = PairIndex(0);
alignas(64) inline constexpr std::array<uint8_t, 64> kPairsHigh = PairIndex(32);
alignas(64) inline constexpr std::array<uint16_t, 32> kQuadsLow = QuadIndex(0);
alignas(64) inline constexpr std::array<uint16_t, 32> kQuadsHigh = QuadIndex(16);

// a's and b's bytes picked by idx (bit 6: from b).
HWY_INLINE __m512i PermuteBytes2(__m512i a, __m512i idx, __m512i b) {
  asm("vpermt2b %2, %1, %0" : "+v"(a) : "v"(idx), "v"(b));
  return a;
}

struct Block64Indices {
  __m512i pairs_low, pairs_high, quads_low, quads_high, bias;
};

// Channels c..c+3 of a whole 64-token block (channel stride 64) as four
// vectors of 16 tokens' unsigned quads (level + 128).
HWY_INLINE void LoadQuads64(const int8_t* p, const Block64Indices& ix, __m512i out[4]) {
  const __m512i c0 = _mm512_loadu_si512(p), c1 = _mm512_loadu_si512(p + 64);
  const __m512i c2 = _mm512_loadu_si512(p + 128), c3 = _mm512_loadu_si512(p + 192);
  const __m512i lo01 = PermuteBytes2(c0, ix.pairs_low, c1);
  const __m512i lo23 = PermuteBytes2(c2, ix.pairs_low, c3);
  const __m512i hi01 = PermuteBytes2(c0, ix.pairs_high, c1);
  const __m512i hi23 = PermuteBytes2(c2, ix.pairs_high, c3);
  out[0] = _mm512_xor_si512(_mm512_permutex2var_epi16(lo01, ix.quads_low, lo23), ix.bias);
  out[1] = _mm512_xor_si512(_mm512_permutex2var_epi16(lo01, ix.quads_high, lo23), ix.bias);
  out[2] = _mm512_xor_si512(_mm512_permutex2var_epi16(hi01, ix.quads_low, hi23), ix.bias);
  out[3] = _mm512_xor_si512(_mm512_permutex2var_epi16(hi01, ix.quads_high, hi23), ix.bias);
}

HWY_INLINE __m512i DotQuads(__m512i acc, __m512i keys, __m512i q) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(keys), "v"(q));
  return acc;
}

// One scale group's scores of 16 tokens for one query: the int32 sums less
// the query's offset, times the tokens' key scales and the query's scale,
// stored (first group) or added to the previous groups' scores.
HWY_INLINE void StoreGroupScores(__m512i acc, int32_t offset, __m512 key_scales, float q_scale,
                                 float* out, bool first) {
  const __m512 sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_set1_epi32(offset)));
  const __m512 scale = _mm512_mul_ps(key_scales, _mm512_set1_ps(q_scale));
  _mm512_storeu_ps(
      out, first ? _mm512_mul_ps(sum, scale) : _mm512_fmadd_ps(sum, scale, _mm512_loadu_ps(out)));
}

// s[j][i0 + t] (+)= scores of NQ queries over tokens [i0, i0 + m) of one
// 16-token vector, all channels. With a cursor, it moves on quad_bytes per
// quad (the caller checked they fit its current range).
template <int NQ, bool kContiguous>
HWY_INLINE void IntTile(const int8_t* levels, const uint16_t* key_scales, std::size_t stride, int r,
                        int group, int i0, int m, const int8_t* ql, int ldl, const float* qs,
                        const int32_t* qo, int ldo, float* s, int lds, PrefetchCursor<>* cursor,
                        std::size_t quad_bytes) {
  const __mmask16 mask16 = static_cast<__mmask16>((1u << m) - 1);
  const __mmask64 mask64 = 0x0001000100010001ull * mask16;
  const __m512i index = _mm512_load_si512(kTokenQuadIndex.data());
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  const int8_t* p = levels + i0;
  for (int g0 = 0, k = 0; g0 < r; g0 += group, ++k) {
    const int g1 = std::min(r, g0 + group);
    __m512i acc[NQ];
    for (int j = 0; j < NQ; ++j) acc[j] = _mm512_setzero_si512();
    for (int c = g0; c < g1; c += 4) {
      const __m512i keys =
          LoadQuad<kContiguous>(p + stride * c, stride, mask64, mask16, index, bias);
      for (int j = 0; j < NQ; ++j) {
        int32_t quad;
        std::memcpy(&quad, ql + static_cast<std::size_t>(j) * ldl + c, sizeof(quad));
        acc[j] = DotQuads(acc[j], keys, _mm512_set1_epi32(quad));
      }
      if (cursor) cursor->advance_within(quad_bytes);
    }
    const __m512 ks =
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16, key_scales + stride * k + i0));
    for (int j = 0; j < NQ; ++j)
      StoreGroupScores(acc[j], qo[j * ldo + k], ks, qs[j],
                       s + static_cast<std::size_t>(j) * lds + i0, g0 == 0);
  }
}
// IntTile for a whole 64-token block stored with channel stride 64: the
// four token vectors of a channel quad come from four whole-row loads and
// are scored together (4 x NQ accumulators).
template <int NQ>
HWY_INLINE void IntBlock64(const int8_t* levels, const uint16_t* key_scales, int r, int group,
                           const int8_t* ql, int ldl, const float* qs, const int32_t* qo, int ldo,
                           float* s, int lds, PrefetchCursor<>* cursor, std::size_t quad_bytes) {
  const Block64Indices ix{_mm512_load_si512(kPairsLow.data()), _mm512_load_si512(kPairsHigh.data()),
                          _mm512_load_si512(kQuadsLow.data()), _mm512_load_si512(kQuadsHigh.data()),
                          _mm512_set1_epi8(static_cast<char>(0x80))};
  for (int g0 = 0, k = 0; g0 < r; g0 += group, ++k) {
    const int g1 = std::min(r, g0 + group);
    __m512i acc[NQ][4];
    for (int j = 0; j < NQ; ++j)
      for (int v = 0; v < 4; ++v) acc[j][v] = _mm512_setzero_si512();
    for (int c = g0; c < g1; c += 4) {
      __m512i keys[4];
      LoadQuads64(levels + 64 * c, ix, keys);
      for (int j = 0; j < NQ; ++j) {
        int32_t quad;
        std::memcpy(&quad, ql + static_cast<std::size_t>(j) * ldl + c, sizeof(quad));
        const __m512i qv = _mm512_set1_epi32(quad);
        for (int v = 0; v < 4; ++v) acc[j][v] = DotQuads(acc[j][v], keys[v], qv);
      }
      if (cursor) cursor->advance_within(quad_bytes);
    }
    __m512 ks[4];
    for (int v = 0; v < 4; ++v)
      ks[v] = _mm512_cvtph_ps(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(key_scales + 64 * k + 16 * v)));
    for (int j = 0; j < NQ; ++j)
      for (int v = 0; v < 4; ++v)
        StoreGroupScores(acc[j][v], qo[j * ldo + k], ks[v], qs[j],
                         s + static_cast<std::size_t>(j) * lds + 16 * v, g0 == 0);
  }
}
#endif  // HWY_TARGET == HWY_AVX3

// s[g][t] = q_g . k_t for the G queries (int8 levels ql, stride ldl; scales
// qs; offsets qo, stride ldo) over the n tokens of `keys` from t0 on, all
// in t0's block. Tokens go 16 to a vector, the last vector masked; the
// lanes past n are written as 0. The first vector's first query pass moves
// the cursor on channel_bytes per channel (all of them up front when they
// do not fit its current range).
void IntegerChannelScores(const PagedRows& keys, int t0, int n, const int8_t* ql, int ldl,
                          const float* qs, const int32_t* qo, int ldo, int G, float* s, int lds,
                          PrefetchCursor<>* cursor, std::size_t channel_bytes) {
#if HWY_TARGET == HWY_AVX3
  const RowFormat& f = keys.format;
  const int r = f.width;
  const std::size_t stride = static_cast<std::size_t>(keys.block_tokens);
  const int slot0 = t0 % keys.block_tokens;
  const auto* levels = reinterpret_cast<const int8_t*>(keys.part(t0)) + slot0;
  const auto* key_scales =
      reinterpret_cast<const uint16_t*>(keys.part(t0) + keys.channels_bytes()) + slot0;
  if (cursor && cursor->bytes_in_range() < channel_bytes * r) {
    cursor->advance(channel_bytes * r);
    cursor = nullptr;
  }
  if (stride == 64 && n == 64) {  // slot0 is 0
    QueryPasses<3>(0, G, [&](auto nq, int g) {
      IntBlock64<nq.value>(levels, key_scales, r, f.group, ql + static_cast<std::size_t>(g) * ldl,
                           ldl, qs + g, qo + g * ldo, ldo, s + static_cast<std::size_t>(g) * lds,
                           lds, cursor, 4 * channel_bytes);
      cursor = nullptr;
    });
    return;
  }
  for (int i0 = 0; i0 < n; i0 += 16) {
    const int m = std::min(16, n - i0);
    QueryPasses<4>(0, G, [&](auto nq, int g) {
      auto tile = [&](auto contiguous) {
        IntTile<nq.value, contiguous.value>(
            levels, key_scales, stride, r, f.group, i0, m, ql + static_cast<std::size_t>(g) * ldl,
            ldl, qs + g, qo + g * ldo, ldo, s + static_cast<std::size_t>(g) * lds, lds, cursor,
            4 * channel_bytes);
      };
      if (stride == 16)
        tile(std::true_type());
      else
        tile(std::false_type());
      cursor = nullptr;
    });
  }
#else
  (void)keys, (void)t0, (void)n, (void)ql, (void)ldl, (void)qs, (void)qo, (void)ldo, (void)G;
  (void)s, (void)lds, (void)cursor, (void)channel_bytes;
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_INT8_CHANNEL_SCORES_INL_H_

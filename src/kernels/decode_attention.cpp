// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/decode_attention.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include "kernels/decode_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/prefetch_cursor.h"
#include "format/row_codec.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Whole vectors over [0, w) and scalar tails, so nothing is written past a
// row's width; the caller zeroes [w, stride) once per row.
void DecodeFloats(const RowFormat& f, const std::byte* src, float* dst) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const int w = f.width;
  int i = 0;
  if (f.dtype == CacheDType::F32) {
    std::memcpy(dst, src, sizeof(float) * w);
  } else if (f.dtype == CacheDType::F16) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    const auto* p = reinterpret_cast<const hwy::float16_t*>(src);
    for (; i + N <= w; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, p + i)), df, dst + i);
    for (; i < w; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = f16_to_f32(h);
    }
  } else {
    const hn::Rebind<hwy::bfloat16_t, DF> db;
    const auto* p = reinterpret_cast<const hwy::bfloat16_t*>(src);
    for (; i + N <= w; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(db, p + i)), df, dst + i);
    for (; i < w; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = bf16_to_f32(h);
    }
  }
}

// A quantized row's f16 group scale. x86 targets from AVX2 on have F16C, one
// instruction instead of group_scale's integer decoding: the direct int4
// loaders fetch a scale per vector, and this made thin int4 keys about 10%
// faster (docs/results/decode.md).
HWY_INLINE float ScaleAt(const std::byte* scales, int g) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  uint16_t h;
  std::memcpy(&h, scales + RowFormat::kScaleBytes * g, sizeof(h));
  return _cvtsh_ss(h);
#else
  return group_scale(scales, g);
#endif
}

// Each helper below handles whole vectors of d from element i on and returns
// where it stopped, so a row is covered by full vectors, then half and
// quarter vectors, then scalars: thin rows (r = 16 int4 is 8 bytes) stay
// vectorized on 16-lane targets.
template <class D>
int Int8Levels(D d, const int8_t* p, int i, int w, float* dst) {
  const hn::Rebind<int32_t, D> di;
  const hn::Rebind<int8_t, D> d8;
  const int N = static_cast<int>(hn::Lanes(d));
  for (; i + N <= w; i += N)
    hn::StoreU(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, p + i))), d, dst + i);
  return i;
}

template <class D>
int Int4Levels(D d, const uint8_t* p, int i, int hi_count, int half, float* dst) {
  const hn::Rebind<int32_t, D> di;
  const hn::Rebind<uint8_t, D> d8;
  const int N = static_cast<int>(hn::Lanes(d));
  const auto mask = hn::Set(di, 15), eight = hn::Set(di, 8);
  for (; i + N <= hi_count; i += N) {
    const auto b = hn::PromoteTo(di, hn::LoadU(d8, p + i));
    hn::StoreU(hn::ConvertTo(d, hn::Sub(hn::And(b, mask), eight)), d, dst + i);
    hn::StoreU(hn::ConvertTo(d, hn::Sub(hn::ShiftRight<4>(b), eight)), d, dst + half + i);
  }
  return i;
}

template <class D>
int ScaleSpan(D d, float s, int i, int e, float* dst) {
  const int N = static_cast<int>(hn::Lanes(d));
  const auto vs = hn::Set(d, s);
  for (; i + N <= e; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, dst + i), vs), d, dst + i);
  return i;
}

// Integer levels to floats, then one multiply per group by its scale.
void DecodeInts(const RowFormat& f, const std::byte* src, float* dst) {
  const DF df;
  const hn::CappedTag<float, 8> d8;
  const hn::CappedTag<float, 4> d4;
  const int w = f.width;
  if (f.dtype == CacheDType::Int8) {
    const auto* p = reinterpret_cast<const int8_t*>(src);
    int i = Int8Levels(df, p, 0, w, dst);
    i = Int8Levels(d4, p, Int8Levels(d8, p, i, w, dst), w, dst);
    for (; i < w; ++i) dst[i] = static_cast<float>(p[i]);
  } else {
    const auto* p = reinterpret_cast<const uint8_t*>(src);
    const int half = (w + 1) / 2, hi_count = w - half;
    int i = Int4Levels(df, p, 0, hi_count, half, dst);
    i = Int4Levels(d4, p, Int4Levels(d8, p, i, hi_count, half, dst), hi_count, half, dst);
    for (; i < half; ++i) {
      dst[i] = static_cast<float>(static_cast<int>(p[i] & 15u) - 8);
      if (half + i < w) dst[half + i] = static_cast<float>(static_cast<int>(p[i] >> 4) - 8);
    }
  }
  const std::byte* scales = src + f.scale_offset();
  for (int g = 0; g < f.groups(); ++g) {
    const float s = ScaleAt(scales, g);
    const int e = std::min(w, (g + 1) * f.group);
    int i = ScaleSpan(df, s, g * f.group, e, dst);
    i = ScaleSpan(d4, s, ScaleSpan(d8, s, i, e, dst), e, dst);
    for (; i < e; ++i) dst[i] *= s;
  }
}

// n consecutive rows (one block's worth at most) into dst with row stride ld.
void DecodeRows(const RowFormat& f, const std::byte* src, int n, float* dst, int ld) {
  const std::size_t rb = f.bytes();
  const bool ints = is_quantized(f.dtype);
  for (int t = 0; t < n; ++t) {
    float* row = dst + static_cast<std::size_t>(t) * ld;
    if (ints)
      DecodeInts(f, src + rb * t, row);
    else
      DecodeFloats(f, src + rb * t, row);
    std::fill(row + f.width, row + ld, 0.0f);
  }
}

float Max(const float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  auto m = hn::Set(df, -std::numeric_limits<float>::infinity());
  for (int i = 0; i < n; i += N) m = hn::Max(m, hn::LoadU(df, x + i));
  return hn::GetLane(hn::MaxOfLanes(df, m));
}

// x = exp(x - m) in place; returns the sum. Padding holds -inf and becomes 0.
float ExpShiftSum(float m, float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto vm = hn::Set(df, m);
  auto sum = hn::Zero(df);
  for (int i = 0; i < n; i += N) {
    const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vm));
    hn::StoreU(e, df, x + i);
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(df, sum));
}

// Row loaders: lanes [i, i + N) of row t as f32, straight from the cache
// (float dtypes) or from decoded scratch rows.
struct ScratchRows {
  const float* base;
  std::size_t stride;  // floats
  HWY_INLINE hn::Vec<DF> operator()(int t, int i) const {
    return hn::LoadU(DF(), base + stride * t + i);
  }
};
struct F32Rows {
  const std::byte* base;
  std::size_t stride;  // bytes
  HWY_INLINE hn::Vec<DF> operator()(int t, int i) const {
    return hn::LoadU(DF(), reinterpret_cast<const float*>(base + stride * t) + i);
  }
};
struct F16Rows {
  const std::byte* base;
  std::size_t stride;
  HWY_INLINE hn::Vec<DF> operator()(int t, int i) const {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(
        DF(), hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(base + stride * t) + i));
  }
};
struct BF16Rows {
  const std::byte* base;
  std::size_t stride;
  HWY_INLINE hn::Vec<DF> operator()(int t, int i) const {
    const hn::Rebind<hwy::bfloat16_t, DF> db;
    return hn::PromoteTo(
        DF(), hn::LoadU(db, reinterpret_cast<const hwy::bfloat16_t*>(base + stride * t) + i));
  }
};

// Quantized rows read directly when every vector lies inside one group and
// one nibble half (checked by WithRows): levels times the group's scale.
struct Int8Rows {
  const std::byte* base;
  std::size_t stride;
  std::size_t scale_offset;
  int group;
  HWY_INLINE hn::Vec<DF> operator()(int t, int i) const {
    const DF df;
    const hn::Rebind<int8_t, DF> d8;
    const hn::Rebind<int32_t, DF> di;
    const std::byte* row = base + stride * t;
    const float sc = ScaleAt(row + scale_offset, i / group);
    const auto x = hn::ConvertTo(
        df, hn::PromoteTo(di, hn::LoadU(d8, reinterpret_cast<const int8_t*>(row) + i)));
    return hn::Mul(x, hn::Set(df, sc));
  }
};
struct Int4Rows {
  const std::byte* base;
  std::size_t stride;
  std::size_t scale_offset;
  int group, half;
  HWY_INLINE hn::Vec<DF> operator()(int t, int i) const {
    const DF df;
    const hn::Rebind<uint8_t, DF> d8;
    const hn::Rebind<int32_t, DF> di;
    const std::byte* row = base + stride * t;
    const float sc = ScaleAt(row + scale_offset, i / group);
    const bool high = i >= half;
    const auto b = hn::PromoteTo(
        di, hn::LoadU(d8, reinterpret_cast<const uint8_t*>(row) + (high ? i - half : i)));
    const auto level = high ? hn::ShiftRight<4>(b) : hn::And(b, hn::Set(di, 15));
    return hn::Mul(hn::ConvertTo(df, hn::Sub(level, hn::Set(di, 8))), hn::Set(df, sc));
  }
};

#if HWY_TARGET != HWY_SCALAR
// An int4 row exactly one vector wide (r = 16 on 16-lane targets, 8 on
// 8-lane ones): its half-vector of bytes holds the low half of the row in
// the low nibbles and the high half in the high nibbles, one scale.
struct Int4OneVectorRows {
  const std::byte* base;
  std::size_t stride;
  std::size_t scale_offset;
  HWY_INLINE hn::Vec<DF> operator()(int t, int) const {
    const DF df;
    const hn::Half<DF> dh;
    const hn::Rebind<uint8_t, decltype(dh)> d8;
    const hn::Rebind<int32_t, decltype(dh)> dih;
    const hn::Rebind<int32_t, DF> di;
    const std::byte* row = base + stride * t;
    const auto b = hn::PromoteTo(dih, hn::LoadU(d8, reinterpret_cast<const uint8_t*>(row)));
    const auto level = hn::Combine(di, hn::ShiftRight<4>(b), hn::And(b, hn::Set(dih, 15)));
    return hn::Mul(hn::ConvertTo(df, hn::Sub(level, hn::Set(di, 8))),
                   hn::Set(df, ScaleAt(row + scale_offset, 0)));
  }
};
#endif

// Register budget. Every accumulator below is a compile-time-sized array of
// vectors, so it stays in registers (a runtime-sized one is spilled to the
// stack and turns every FMA into a store/reload chain). AVX-512 has 32
// vector registers, the other x86 targets 16.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kPassQueries = 4;  // queries per pass in Scores: 4 x 4 accumulators
constexpr int kAccRegs = 16;     // value accumulators per pass in Accumulate
#else
constexpr int kPassQueries = 2;
constexpr int kAccRegs = 8;
#endif
// Tokens scored together: their four lane sums are reduced at once.
constexpr int kTokens = 4;

// Sums of the lanes of a, b, c, e into out[0..3]. Within every 128-bit block
// two interleave-add rounds transpose and add, then the blocks are folded
// together: 3 + log2(blocks) shuffle-adds instead of four full reductions.
HWY_INLINE void StoreSums4(hn::Vec<DF> a, hn::Vec<DF> b, hn::Vec<DF> c, hn::Vec<DF> e, float* out) {
  const DF df;
#if HWY_TARGET == HWY_SCALAR
  out[0] = hn::GetLane(a), out[1] = hn::GetLane(b), out[2] = hn::GetLane(c);
  out[3] = hn::GetLane(e);
  (void)df;
#else
  const hn::RepartitionToWide<hn::RebindToUnsigned<DF> > du64;
  // [a0+a2, b0+b2, a1+a3, b1+b3] per block, and likewise for c, e.
  const auto ab = hn::Add(hn::InterleaveLower(df, a, b), hn::InterleaveUpper(df, a, b));
  const auto ce = hn::Add(hn::InterleaveLower(df, c, e), hn::InterleaveUpper(df, c, e));
  const auto ab64 = hn::BitCast(du64, ab), ce64 = hn::BitCast(du64, ce);
  auto sum = hn::Add(hn::BitCast(df, hn::InterleaveLower(du64, ab64, ce64)),
                     hn::BitCast(df, hn::InterleaveUpper(du64, ab64, ce64)));
  if constexpr (hn::MaxLanes(df) > 8) {  // 512-bit: fold four blocks to two
    const hn::Half<DF> dh;
    const auto h = hn::Add(hn::LowerHalf(dh, sum), hn::UpperHalf(dh, sum));
    const hn::Half<decltype(dh)> dq;
    hn::StoreU(hn::Add(hn::LowerHalf(dq, h), hn::UpperHalf(dq, h)), dq, out);
  } else if constexpr (hn::MaxLanes(df) > 4) {  // 256-bit: two blocks to one
    const hn::Half<DF> dh;
    hn::StoreU(hn::Add(hn::LowerHalf(dh, sum), hn::UpperHalf(dh, sum)), dh, out);
  } else {
    hn::StoreU(sum, df, out);
  }
#endif
}

// Keys stored by channel (PagedRows::by_channel): lanes [i, i + N) of the
// tokens of channel j as f32, and one token's channel for scalar tails.
struct F32Channels {
  const float* base;
  std::size_t stride;  // elements from one channel to the next
  static constexpr bool kScaled = false;
  HWY_INLINE hn::Vec<DF> operator()(int j, int i) const {
    return hn::LoadU(DF(), base + stride * j + i);
  }
  float at(int j, int i) const { return base[stride * j + i]; }
};
// T is hwy::float16_t or hwy::bfloat16_t.
template <class T>
struct HalfChannels {
  const T* base;
  std::size_t stride;
  static constexpr bool kScaled = false;
  HWY_INLINE hn::Vec<DF> operator()(int j, int i) const {
    const hn::Rebind<T, DF> dh;
    return hn::PromoteTo(DF(), hn::LoadU(dh, base + stride * j + i));
  }
  float at(int j, int i) const {
    uint16_t h;
    std::memcpy(&h, base + stride * j + i, sizeof(h));
    return std::is_same_v<T, hwy::float16_t> ? f16_to_f32(h) : bf16_to_f32(h);
  }
};

// int8 keys by channel: levels of channel j, and the f16 scales of group g
// (channels [g * group, (g + 1) * group)) stored the same way after them.
struct Int8Channels {
  const int8_t* base;
  std::size_t stride;
  HalfChannels<hwy::float16_t> scales;
  int group;
  static constexpr bool kScaled = true;
  HWY_INLINE hn::Vec<DF> operator()(int j, int i) const {
    const DF df;
    const hn::Rebind<int8_t, DF> d8;
    const hn::Rebind<int32_t, DF> di;
    return hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, base + stride * j + i)));
  }
  HWY_INLINE hn::Vec<DF> scale(int g, int i) const { return scales(g, i); }
  float at(int j, int i) const { return base[stride * j + i] * scales.at(j / group, i); }
};

// int4 keys by channel (PagedRows::by_channel): slot s of channel j is the
// low nibble of byte s of the channel, or the high nibble of byte s - half.
// Lanes [i, i + N) are slots slot0 + i on: whole vectors when half and slot0
// are multiples of N (Int4ChannelVectors), so one shift or mask serves all.
struct Int4Channels {
  const uint8_t* base;  // the part
  std::size_t stride;   // bytes per channel (half)
  int slot0, half;
  HalfChannels<hwy::float16_t> scales;
  int group;
  static constexpr bool kScaled = true;
  HWY_INLINE hn::Vec<DF> operator()(int j, int i) const {
    const DF df;
    const hn::Rebind<uint8_t, DF> d8;
    const hn::Rebind<int32_t, DF> di;
    const int s = slot0 + i;
    const bool high = s >= half;
    const auto b = hn::PromoteTo(di, hn::LoadU(d8, base + stride * j + (high ? s - half : s)));
    const auto level = high ? hn::ShiftRight<4>(b) : hn::And(b, hn::Set(di, 15));
    return hn::ConvertTo(df, hn::Sub(level, hn::Set(di, 8)));
  }
  HWY_INLINE hn::Vec<DF> scale(int g, int i) const { return scales(g, i); }
  float at(int j, int i) const {
    const int s = slot0 + i;
    const uint8_t b = base[stride * j + (s < half ? s : s - half)];
    return static_cast<float>((s < half ? b & 15 : b >> 4) - 8) * scales.at(j / group, i);
  }
};

// Whether ChannelScores can read the keys of tokens from t0 on: int4 keys
// need whole vectors on either side of the half block.
bool Int4ChannelVectors(const PagedRows& keys, int t0) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  return keys.format.dtype != CacheDType::Int4 ||
         ((keys.block_tokens / 2) % N == 0 && (t0 % keys.block_tokens) % N == 0);
}

// Calls fn with the channel loader of the keys' tokens from t0 to the end
// of t0's block.
template <class Fn>
void WithChannels(const PagedRows& keys, int t0, Fn&& fn) {
  const std::size_t stride = static_cast<std::size_t>(keys.block_tokens);
  const int slot0 = t0 % keys.block_tokens;
  const std::byte* p = keys.part(t0) + keys.element_bytes() * slot0;
  const std::byte* scales =
      keys.part(t0) + keys.channels_bytes() + RowFormat::kScaleBytes * slot0;
  switch (keys.format.dtype) {
    case CacheDType::F16:
      return fn(HalfChannels<hwy::float16_t>{reinterpret_cast<const hwy::float16_t*>(p), stride});
    case CacheDType::BF16:
      return fn(HalfChannels<hwy::bfloat16_t>{reinterpret_cast<const hwy::bfloat16_t*>(p), stride});
    case CacheDType::Int8:
      return fn(Int8Channels{reinterpret_cast<const int8_t*>(p),
                             stride,
                             {reinterpret_cast<const hwy::float16_t*>(scales), stride},
                             keys.format.group});
    case CacheDType::Int4:
      return fn(Int4Channels{reinterpret_cast<const uint8_t*>(keys.part(t0)),
                             keys.channel_bytes(),
                             slot0,
                             keys.block_tokens / 2,
                             {reinterpret_cast<const hwy::float16_t*>(scales), stride},
                             keys.format.group});
    default:
      return fn(F32Channels{reinterpret_cast<const float*>(p), stride});
  }
}

// Lanes [i0, i0 + TV * N) of s[j] (+)= sum over channels [c0, c1) of
// q_j[c] * k_c for NQ queries: a channel's token vectors are loaded (and
// converted) once for all NQ queries, and each score lane is a plain FMA
// chain, so nothing is summed across lanes. Below 8 chains the channels
// alternate between two sets of accumulators to hide the FMA latency. With
// a cursor, it is moved on channel_bytes after each channel; the caller
// makes sure the channels fit in its current range.
template <int NQ, int TV, class Ch>
HWY_INLINE void ChannelTile(const Ch& ch, int i0, int c0, int c1, const float* q, int ldq, float* s,
                            int lds, bool first, PrefetchCursor<>* cursor,
                            std::size_t channel_bytes) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  constexpr int kSets = NQ * TV < 8 ? 2 : 1;
  hn::Vec<DF> acc[kSets][NQ][TV];
  for (int j = 0; j < NQ; ++j)
    for (int v = 0; v < TV; ++v) {
      acc[0][j][v] = first ? hn::Zero(df) : hn::LoadU(df, s + j * lds + i0 + v * N);
      if constexpr (kSets == 2) acc[1][j][v] = hn::Zero(df);
    }
  auto channel = [&](int c, auto set) {
    hn::Vec<DF> k[TV];
    for (int v = 0; v < TV; ++v) k[v] = ch(c, i0 + v * N);
    for (int j = 0; j < NQ; ++j) {
      const auto qv = hn::Set(df, q[j * ldq + c]);
      for (int v = 0; v < TV; ++v) acc[set][j][v] = hn::MulAdd(qv, k[v], acc[set][j][v]);
    }
    if (cursor) cursor->advance_within(channel_bytes);
  };
  int c = c0;
  for (; c + kSets <= c1; c += kSets) {
    channel(c, std::integral_constant<int, 0>());
    if constexpr (kSets == 2) channel(c + 1, std::integral_constant<int, kSets - 1>());
  }
  if (c < c1) channel(c, std::integral_constant<int, 0>());
  for (int j = 0; j < NQ; ++j)
    for (int v = 0; v < TV; ++v) {
      auto a = acc[0][j][v];
      if constexpr (kSets == 2) a = hn::Add(a, acc[1][j][v]);
      hn::StoreU(a, df, s + j * lds + i0 + v * N);
    }
}

// Lanes [i0, i0 + TV * N) of s[j] = (or +=, unless first) the scale of
// group g times p[j], for NQ queries: a quantized group's sums scaled.
template <int NQ, int TV, class Ch>
HWY_INLINE void ScaleGroup(const Ch& ch, int g, int i0, const float* p, float* s, int lds,
                           bool first) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int v = 0; v < TV; ++v) {
    const auto sc = ch.scale(g, i0 + v * N);
    for (int j = 0; j < NQ; ++j) {
      float* out = s + j * lds + i0 + v * N;
      const auto x = hn::Mul(sc, hn::LoadU(df, p + j * lds + i0 + v * N));
      hn::StoreU(first ? x : hn::Add(hn::LoadU(df, out), x), df, out);
    }
  }
}

// s[g][t] = q_g . k_t for all G queries and the n tokens of `ch`, r
// channels. Token tiles of 4 vectors, then 2, then 1; each tile runs over
// all channels (of a scale group, for quantized keys) with its sums in
// registers. The first tile moves the prefetch cursor on channel_bytes per
// channel, inline: it used to go through the scores between groups of 4-16
// channels so that the cursor's out-of-line slow path could run between
// them, which cost the gqa f16 score pass a fifth of its time with the
// cache resident (docs/results/decode.md). The slow path now runs only
// where a channel leaves the cursor's current range. Quantized keys sum each
// scale group's channels into `partial` (rows of lds) and add them to s
// scaled. Tokens past the last whole vector are scored one by one.
template <class Ch>
void ChannelScores(const Ch& ch, int n, int r, const float* q, int ldq, int G, float* s, int lds,
                   float* partial, PrefetchCursor<>* cursor, std::size_t channel_bytes) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  const int full = n / N;
  int scale_group = r;
  if constexpr (Ch::kScaled) scale_group = ch.group;
  QueryPasses<kPassQueries>(0, G, [&](auto nq, int g) {
    const float* qg = q + g * ldq;
    float* sg = s + g * lds;
    float* sums = Ch::kScaled ? partial : sg;
    int v = 0;
    auto tiles = [&](auto tv) {
      for (; v + tv.value <= full; v += tv.value)
        for (int g0 = 0; g0 < r; g0 += scale_group) {
          const int g1 = std::min(r, g0 + scale_group);
          for (int c0 = g0, c1 = g1; c0 < g1; c0 = c1) {
            PrefetchCursor<>* inline_cursor = nullptr;
            c1 = g1;
            if (cursor && v == 0) {
              const std::size_t room = cursor->bytes_in_range();
              const auto fit = static_cast<int>(std::min<std::size_t>(
                  channel_bytes > 0 ? room / channel_bytes : g1 - c0, g1 - c0));
              if (fit > 0) {
                c1 = c0 + fit;
                inline_cursor = cursor;
              } else {
                c1 = c0 + 1;
              }
            }
            ChannelTile<nq.value, tv.value>(ch, v * N, c0, c1, qg, ldq, sums, lds, c0 == g0,
                                            inline_cursor, channel_bytes);
            if (cursor && v == 0 && !inline_cursor) cursor->advance(channel_bytes);
          }
          if constexpr (Ch::kScaled)
            ScaleGroup<nq.value, tv.value>(ch, g0 / scale_group, v * N, sums, sg, lds, g0 == 0);
        }
    };
    tiles(std::integral_constant<int, 4>());
    tiles(std::integral_constant<int, 2>());
    tiles(std::integral_constant<int, 1>());
    if (cursor && full == 0) cursor->advance(channel_bytes * r);
    cursor = nullptr;
    for (int t = full * N; t < n; ++t)
      for (int j = 0; j < nq.value; ++j) {
        float acc = 0;
        for (int c = 0; c < r; ++c) acc += qg[j * ldq + c] * ch.at(c, t);
        sg[j * lds + t] = acc;
      }
  });
}

// What a loader passes to the cursor per row it consumes (none when null).
struct Ahead {
  PrefetchCursor<>* cursor = nullptr;
  std::size_t row_bytes = 0;
  HWY_INLINE void row() const {
    if (cursor) cursor->advance(row_bytes);
  }
};

// s[j][t] = q_j . k_t for NQ queries (rows of q, stride ldq) and T tokens
// starting at t0. Each key vector is loaded (and converted) once for all NQ
// queries; NQ x T independent FMA chains hide the FMA latency.
template <int NQ, int T, class Rows>
HWY_INLINE void ScoreTile(const Rows& rows, int t0, int w, const float* q, int ldq, float* s,
                          int lds) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  hn::Vec<DF> acc[NQ][T];
  for (int j = 0; j < NQ; ++j)
    for (int u = 0; u < T; ++u) acc[j][u] = hn::Zero(df);
  for (int i = 0; i < w; i += N) {
    hn::Vec<DF> k[T];
    for (int u = 0; u < T; ++u) k[u] = rows(t0 + u, i);
    for (int j = 0; j < NQ; ++j) {
      const auto qv = hn::LoadU(df, q + j * ldq + i);
      for (int u = 0; u < T; ++u) acc[j][u] = hn::MulAdd(qv, k[u], acc[j][u]);
    }
  }
  for (int j = 0; j < NQ; ++j) {
    if constexpr (T == 4) {
      StoreSums4(acc[j][0], acc[j][1], acc[j][2], acc[j][3], s + j * lds + t0);
    } else {
      for (int u = 0; u < T; ++u) s[j * lds + t0 + u] = hn::GetLane(hn::SumOfLanes(df, acc[j][u]));
    }
  }
}

template <int NQ, class Rows>
void ScorePass(const Rows& rows, int n, int w, const float* q, int ldq, float* s, int lds,
               const Ahead& ahead) {
  int t = 0;
  for (; t + kTokens <= n; t += kTokens) {
    for (int u = 0; u < kTokens; ++u) ahead.row();
    ScoreTile<NQ, kTokens>(rows, t, w, q, ldq, s, lds);
  }
  for (; t < n; ++t) {
    ahead.row();
    ScoreTile<NQ, 1>(rows, t, w, q, ldq, s, lds);
  }
}

// Calls fn(std::integral_constant<int, nq>(), g) for the passes that cover
// queries [g0, g1): passes of kWidest, then at most one each of 3 (one pass,
// not 2 + 1: 12 query heads over 4 KV heads), 2 and 1 narrower than kWidest.
template <int kWidest, class Fn>
HWY_INLINE void QueryPasses(int g0, int g1, Fn&& fn) {
  int g = g0;
  for (; g + kWidest <= g1; g += kWidest) fn(std::integral_constant<int, kWidest>(), g);
  if constexpr (kWidest > 3) {
    if (g + 3 <= g1) {
      fn(std::integral_constant<int, 3>(), g);
      g += 3;
    }
  }
  if constexpr (kWidest > 2) {
    if (g + 2 <= g1) {
      fn(std::integral_constant<int, 2>(), g);
      g += 2;
    }
  }
  if (g < g1) fn(std::integral_constant<int, 1>(), g);
}

// s[g][t] = q_g . k_t for g in [g0, g1), t in [0, n), in passes of up to
// kPassQueries queries. w is a multiple of the lanes.
// The first pass moves the prefetch cursor (`ahead`) on per token (ScoreAdvance).
template <class Rows>
void Scores(const Rows& rows, int n, int w, const float* q, int ldq, int g0, int g1, float* s,
            int lds, Ahead ahead) {
  QueryPasses<kPassQueries>(g0, g1, [&](auto nq, int g) {
    ScorePass<nq.value>(rows, n, w, q + g * ldq, ldq, s + g * lds, lds, ahead);
    ahead = Ahead{};
  });
}

// Lanes [i, i + C * N) of acc_j = alpha_j * acc_j + sum_t p[j][t] * v_t for
// NQ queries and tokens [t0, t1): the C x NQ accumulators stay in registers
// over the tokens, each value vector is loaded (and converted) once for the
// NQ queries, and the softmax rescale (alpha, null for none) costs one
// multiply per accumulator.
template <int NQ, int C, class Rows>
HWY_INLINE void AccumulateTile(const Rows& rows, int t0, int t1, int i, const float* p, int lds,
                               const float* alpha, float* acc, int ldv, const Ahead& ahead) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  hn::Vec<DF> a[NQ][C];
  for (int j = 0; j < NQ; ++j) {
    const auto va = hn::Set(df, alpha ? alpha[j] : 1.0f);
    for (int c = 0; c < C; ++c) a[j][c] = hn::LoadU(df, acc + j * ldv + i + c * N);
    if (alpha)
      for (int c = 0; c < C; ++c) a[j][c] = hn::Mul(a[j][c], va);
  }
  for (int t = t0; t < t1; ++t) {
    ahead.row();
    hn::Vec<DF> v[C];
    for (int c = 0; c < C; ++c) v[c] = rows(t, i + c * N);
    for (int j = 0; j < NQ; ++j) {
      const auto pj = hn::Set(df, p[j * lds + t]);
      for (int c = 0; c < C; ++c) a[j][c] = hn::MulAdd(pj, v[c], a[j][c]);
    }
  }
  for (int j = 0; j < NQ; ++j)
    for (int c = 0; c < C; ++c) hn::StoreU(a[j][c], df, acc + j * ldv + i + c * N);
}

// Whole row width in tiles of C vectors, then C / 2, ... down to 1; the
// first tile moves the prefetch cursor on per token.
template <int NQ, int C, class Rows>
HWY_INLINE void AccumulateFrom(const Rows& rows, int t0, int t1, int i, int w, const float* p,
                               int lds, const float* alpha, float* acc, int ldv, Ahead& ahead) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  for (; i + C * N <= w; i += C * N, ahead = Ahead{})
    AccumulateTile<NQ, C>(rows, t0, t1, i, p, lds, alpha, acc, ldv, ahead);
  if constexpr (C > 1)
    AccumulateFrom<NQ, C / 2>(rows, t0, t1, i, w, p, lds, alpha, acc, ldv, ahead);
}

constexpr int TileVectors(int nq) {
  const int c = kAccRegs / nq;
  return c >= 8 ? 8 : c >= 4 ? 4 : c >= 2 ? 2 : 1;
}

// Tokens in chunks, all tiles of a chunk before the next: a row's first
// reads then come at an even pace over the pass (one chunk's rows at a
// time) instead of all in the first tile, so the prefetch cursor, moved on
// by the first tile of each chunk, issues its requests evenly too. The
// accumulators go through memory once per chunk and tile: loads and stores,
// which do not compete with the FMAs for ports.
constexpr int kChunkTokens = 16;
template <int NQ, class Rows>
void AccumulatePass(const Rows& rows, int n, int w, const float* p, int lds, const float* alpha,
                    float* acc, int ldv, Ahead& ahead) {
  for (int t0 = 0; t0 < n; t0 += kChunkTokens) {
    Ahead chunk_ahead = ahead;
    AccumulateFrom<NQ, TileVectors(NQ)>(rows, t0, std::min(n, t0 + kChunkTokens), 0, w, p, lds,
                                        t0 == 0 ? alpha : nullptr, acc, ldv, chunk_ahead);
  }
  ahead = Ahead{};
}

// acc_g = alpha_g * acc_g + sum_t p[g][t] * v_t for g in [g0, g1) over the
// n rows of one value head, in passes of up to 4 queries.
template <class Rows>
void Accumulate(const Rows& rows, int n, int w, const float* p, int lds, const float* alpha, int g0,
                int g1, float* acc, int ldv, Ahead ahead) {
  QueryPasses<4>(g0, g1, [&](auto nq, int g) {
    AccumulatePass<nq.value>(rows, n, w, p + g * lds, lds, alpha + g, acc + g * ldv, ldv, ahead);
  });
}

// Calls fn with a loader for n stored rows: direct for float types whose
// width is whole vectors, otherwise decoded into scratch (stride ld) first.
// Passes the width to loop over (whole vectors, zero-padded in scratch).
template <class Fn>
void WithRows(const RowFormat& f, const std::byte* src, int n, float* scratch, int ld, Fn&& fn) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  const std::size_t rb = f.bytes();
  if (f.width % N == 0) {
    switch (f.dtype) {
      case CacheDType::F32:
        return fn(F32Rows{src, rb}, f.width);
      case CacheDType::F16:
        return fn(F16Rows{src, rb}, f.width);
      case CacheDType::BF16:
        return fn(BF16Rows{src, rb}, f.width);
      case CacheDType::Int8:
        if (f.group % N == 0) return fn(Int8Rows{src, rb, f.scale_offset(), f.group}, f.width);
        break;
      case CacheDType::Int4:
        if (f.group % N == 0 && f.width % 2 == 0 && (f.width / 2) % N == 0)
          return fn(Int4Rows{src, rb, f.scale_offset(), f.group, f.width / 2}, f.width);
#if HWY_TARGET != HWY_SCALAR
        if (f.width == N && f.group == N)
          return fn(Int4OneVectorRows{src, rb, f.scale_offset()}, f.width);
#endif
        break;
    }
  }
  DecodeRows(f, src, n, scratch, ld);
  fn(ScratchRows{scratch, static_cast<std::size_t>(ld)}, ld);
}

// k_t[0, W) = sum_j c_t[j] * P[:, j] for n tokens, with c_t[j] at
// c[t * ldc + j * ldj] (by token or by channel) and rows of stride ldk out. Four tokens share each
// loaded chunk of P, and the chunk of k stays in registers across j, so the loop is bound by FMAs,
// not loads.
void Rebuild(const float* c, int ldc, int ldj, int n, int r, const float* up_t, int W, float* k,
             int ldk) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  constexpr int kTok = 4;
  for (int t0 = 0; t0 < n; t0 += kTok) {
    const int tn = std::min(kTok, n - t0);
    int i = 0;
    for (; i + N <= W; i += N) {
      hn::Vec<DF> a[kTok];
      for (int u = 0; u < kTok; ++u) a[u] = hn::Zero(df);
      for (int j = 0; j < r; ++j) {
        const auto p = hn::LoadU(df, up_t + static_cast<std::size_t>(j) * W + i);
        for (int u = 0; u < tn; ++u)
          a[u] = hn::MulAdd(hn::Set(df, c[(t0 + u) * ldc + j * ldj]), p, a[u]);
      }
      for (int u = 0; u < tn; ++u)
        hn::StoreU(a[u], df, k + static_cast<std::size_t>(t0 + u) * ldk + i);
    }
    for (; i < W; ++i)
      for (int u = 0; u < tn; ++u) {
        float acc = 0;
        for (int j = 0; j < r; ++j)
          acc += c[(t0 + u) * ldc + j * ldj] * up_t[static_cast<std::size_t>(j) * W + i];
        k[static_cast<std::size_t>(t0 + u) * ldk + i] = acc;
      }
  }
}

// (x1, x2) <- (x1 c - x2 s, x2 c + x1 s) over n pairs.
void RotatePairs(float* x1, float* x2, const float* c, const float* s, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  int i = 0;
  for (; i + N <= n; i += N) {
    const auto a = hn::LoadU(df, x1 + i), b = hn::LoadU(df, x2 + i);
    const auto vc = hn::LoadU(df, c + i), vs = hn::LoadU(df, s + i);
    hn::StoreU(hn::NegMulAdd(b, vs, hn::Mul(a, vc)), df, x1 + i);
    hn::StoreU(hn::MulAdd(a, vs, hn::Mul(b, vc)), df, x2 + i);
  }
  for (; i < n; ++i) {
    const float a = x1[i], b = x2[i];
    x1[i] = a * c[i] - b * s[i];
    x2[i] = b * c[i] + a * s[i];
  }
}

// One head's running state in scratch: its scaled (and rotated) queries,
// value accumulators, softmax max and sum per query, and in latent RoPE mode
// the angles of its next token.
struct HeadState {
  float *q, *acc, *m, *l;
  double *base_c, *base_s;
};

HeadState StateOf(AttentionScratch& scratch, int h) {
  double* rope = scratch.rope(h);
  return {scratch.queries(h),        scratch.accum(h), scratch.maxes(h), scratch.sums(h), rope,
          rope + scratch.rope_half()};
}

void Start(const AttentionShape& shape, const AttentionTask& task, const LatentKeys* latent,
           const HeadState& st) {
  const int G = task.n_queries, d = shape.head_dim;
  const int qw = latent ? d : task.keys.format.width;
  const int ldq = padded(qw), ldv = padded(d);
  // Rotated keys are stored as H k: scores use H q (or, in latent mode, the
  // decoded latents are rotated back before the rebuild).
  const bool rotate_q = task.keys.format.rotated && !latent;
  for (int g = 0; g < G; ++g) {
    float* q = st.q + g * ldq;
    for (int i = 0; i < qw; ++i) q[i] = task.q[g * qw + i] * shape.scale;
    if (rotate_q) hadamard_rotate(q, qw);
    std::fill(q + qw, q + ldq, 0.0f);
    std::fill(st.acc + g * ldv, st.acc + (g + 1) * ldv, 0.0f);
    st.m[g] = -std::numeric_limits<float>::infinity();
    st.l[g] = 0;
  }
  if (latent && latent->rope)
    for (int i = 0; i < d / 2; ++i) {
      const double a = task.begin * latent->rope->inv_freq[i];
      st.base_c[i] = task.begin ? std::cos(a) : 1.0;
      st.base_s[i] = task.begin ? std::sin(a) : 0.0;
    }
}

// Prefetch pacing: the bytes the score pass moves the cursor on per key row.
// Moved on by the key bytes alone, it asks for little while rows of few bytes
// take long to score (an 18-byte int4 row against 4 queries takes about as
// long as a 256-byte value row takes to accumulate), and memory sits idle.
// So where the score pass would ask for less than a byte per unit of its work
// (units are about vector uops), it moves the cursor on by its share of the
// run's work instead, and the value passes by the rest; never by less than
// the key bytes, so the cursor stays ahead of the reader. Kernel harness,
// from DRAM: gqa thin int4 +10%. Applied to every shape it was within +-3%,
// and a little lower on gqa full-f16, hence the threshold.
int LoadUnits(CacheDType t) {  // per vector loaded: load, convert, scale
  switch (t) {
    case CacheDType::F32:
      return 1;
    case CacheDType::F16:
    case CacheDType::BF16:
      return 2;
    case CacheDType::Int8:
      return 4;
    case CacheDType::Int4:
      return 5;
  }
  return 2;
}
std::size_t ScoreAdvance(const AttentionTask& task, int d) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  const int G = task.n_queries, per_value = G / task.n_values;
  const int kv = (task.keys.format.width + N - 1) / N, vv = (d + N - 1) / N;
  auto passes = [](int g, int widest) { return (g + widest - 1) / widest; };
  constexpr int kSumUnits = 3;  // a score's share of the horizontal sums
  const long score =
      static_cast<long>(G) * (kv + kSumUnits) +
      static_cast<long>(LoadUnits(task.keys.format.dtype)) * kv * passes(G, kPassQueries);
  long value = 0;
  std::size_t bytes = task.keys.format.bytes();
  for (int vh = 0; vh < task.n_values; ++vh) {
    const RowFormat& f = task.values[vh].format;
    value += static_cast<long>(vv) * (per_value + LoadUnits(f.dtype) * passes(per_value, 4));
    bytes += f.bytes();
  }
  const std::size_t key_bytes = task.keys.format.bytes();
  if (static_cast<long>(key_bytes) >= score) return key_bytes;
  return std::clamp<std::size_t>(bytes * score / (score + value), key_bytes, bytes);
}

// Where the key bytes of tokens [tb, tb + nb) of one block start, and how
// many there are from there on. By channel, from the first token's channel 0
// (int4: the part's start) to the last token's last channel, or its last
// scale when quantized (the other tokens' channels in between are prefetched
// too when the run is not a whole block).
const std::byte* KeyStart(const PagedRows& keys, int tb) {
  if (!keys.by_channel) return keys.row(tb);
  return keys.part(tb) + keys.element_bytes() * (tb % keys.block_tokens);
}
std::size_t KeySpan(const PagedRows& keys, int tb, int nb) {
  const RowFormat& f = keys.format;
  if (!keys.by_channel) return f.bytes() * nb;
  const std::size_t bt = keys.block_tokens, slot = tb % keys.block_tokens;
  const std::size_t end =
      f.groups() > 0
          ? keys.channels_bytes() + RowFormat::kScaleBytes * ((f.groups() - 1) * bt + slot + nb)
          : keys.element_bytes() * ((f.width - 1) * bt + slot + nb);
  return end - static_cast<std::size_t>(KeyStart(keys, tb) - keys.part(tb));
}

// Rows [tb, tb + nb) of one head (its keys and every value head it reads),
// as a prefetch target.
struct Run {
  const AttentionTask* task = nullptr;
  int tb = 0, nb = 0;
};

// The key rows of one block of one head: decoded for latent keys (and rebuilt
// and rotated), scored against every query of the head, then folded into the
// online softmax and the value accumulators. The start of `next` is
// prefetched meanwhile; `first` also asks for this run's start (no earlier
// run's cursor did).
void Block(const AttentionShape& shape, const AttentionTask& task, const LatentKeys* latent,
           AttentionScratch& scratch, const HeadState& st, int t0, int t1, bool first,
           const Run& next) {
  const int G = task.n_queries, d = shape.head_dim, n = t1 - t0;
  const int r = task.keys.format.width;
  const int qw = latent ? d : r;
  const int ldq = padded(qw), ldv = padded(d), lds = padded(task.keys.block_tokens),
            ldc = padded(r);
  const int share = latent ? latent->share : 1;
  // Latent: query g dots with slice g / (G / share) of the rebuilt key; the
  // stride leaves room for the last slice's padded read.
  const int ldk = latent ? padded((share - 1) * d + ldq) : ldq;
  const int per_value = G / task.n_values;
  float* s = scratch.scores();
  float* kbuf = scratch.keys();
  float* vbuf = scratch.values();
  float alpha[kMaxQueries];

  // This run's rows, then the next run's: what the thread reads from here on.
  PrefetchCursor<> cursor;
  auto add_run = [&](const AttentionTask& on, int tb, int nb) {
    cursor.add(KeyStart(on.keys, tb), KeySpan(on.keys, tb, nb));
    for (int vh = 0; vh < on.n_values; ++vh)
      cursor.add(on.values[vh].row(tb), on.values[vh].format.bytes() * nb);
  };
  add_run(task, t0, n);
  if (next.task) add_run(*next.task, next.tb, next.nb);
  cursor.start(first);
  const bool by_channel = task.keys.by_channel;
  const std::size_t key_advance =
      latent || by_channel ? task.keys.format.bytes() : ScoreAdvance(task, d);
  const std::size_t value_less = (key_advance - task.keys.format.bytes()) / task.n_values;
  auto ahead = [&](const PagedRows& rows) {
    return Ahead{&cursor, &rows == &task.keys ? key_advance : rows.format.bytes() - value_less};
  };

  if (latent) {
    const RopeSteps* rope = latent->rope;
    const int W = share * d, half = d / 2;
    float* cbuf = scratch.latents();
    float* tok_c = scratch.token_angles();
    float* tok_s = tok_c + half;
    // Latents by channel are decoded a channel (n tokens) at a time and
    // stay so: the rebuild reads them one scalar at a time either way.
    int c_token = ldc, c_channel = 1;
    if (by_channel && is_quantized(task.keys.format.dtype)) {
      for (int t = 0; t < n; ++t) {  // read_row decodes to the original basis
        float* c = cbuf + static_cast<std::size_t>(t) * ldc;
        read_row(task.keys, t0 + t, c);
        std::fill(c + r, c + ldc, 0.0f);
      }
    } else if (by_channel) {
      c_token = 1, c_channel = n;
      RowFormat channel = task.keys.format;
      channel.width = n;
      const std::size_t stride = task.keys.element_bytes() * task.keys.block_tokens;
      const std::byte* p = KeyStart(task.keys, t0);
      for (int j = 0; j < r; ++j) DecodeFloats(channel, p + stride * j, cbuf + j * n);
    } else {
      DecodeRows(task.keys.format, task.keys.row(t0), n, cbuf, ldc);
    }
    if (task.keys.format.rotated && !by_channel)
      for (int t = 0; t < n; ++t) hadamard_rotate(cbuf + static_cast<std::size_t>(t) * ldc, r);
    Rebuild(cbuf, c_token, c_channel, n, r, latent->up_t, W, kbuf, ldk);
    for (int t = 0; t < n; ++t) {
      float* k = kbuf + static_cast<std::size_t>(t) * ldk;
      std::fill(k + W, k + ldk, 0.0f);
      if (!rope) continue;
      const double* sc = rope->cos.data() + static_cast<std::size_t>(t) * half;
      const double* ss = rope->sin.data() + static_cast<std::size_t>(t) * half;
      for (int i = 0; i < half; ++i) {
        tok_c[i] = static_cast<float>(st.base_c[i] * sc[i] - st.base_s[i] * ss[i]);
        tok_s[i] = static_cast<float>(st.base_s[i] * sc[i] + st.base_c[i] * ss[i]);
      }
      for (int seg = 0; seg < share; ++seg)
        RotatePairs(k + seg * d, k + seg * d + half, tok_c, tok_s, half);
    }
    if (rope) {
      const double* sc = rope->cos.data() + static_cast<std::size_t>(n) * half;
      const double* ss = rope->sin.data() + static_cast<std::size_t>(n) * half;
      for (int i = 0; i < half; ++i) {
        const double c = st.base_c[i] * sc[i] - st.base_s[i] * ss[i];
        st.base_s[i] = st.base_s[i] * sc[i] + st.base_c[i] * ss[i];
        st.base_c[i] = c;
      }
    }
    cursor.advance(KeySpan(task.keys, t0, n));  // few bytes: at once
    for (int seg = 0; seg < share; ++seg)
      Scores(ScratchRows{kbuf + seg * d, static_cast<std::size_t>(ldk)}, n, ldq, st.q, ldq,
             seg * (G / share), (seg + 1) * (G / share), s, lds, Ahead{});
  } else if (by_channel && !Int4ChannelVectors(task.keys, t0)) {
    // int4 keys from a slot off the vector grid (a window starting inside a
    // block): their rows gathered, then scored as rows.
    auto* rows = reinterpret_cast<std::byte*>(scratch.latents());
    const std::size_t rb = task.keys.format.bytes();
    for (int t = 0; t < n; ++t) stored_row(task.keys, t0 + t, rows + rb * t);
    cursor.advance(KeySpan(task.keys, t0, n));
    WithRows(task.keys.format, rows, n, kbuf, ldk, [&](const auto& rows, int w) {
      Scores(rows, n, w, st.q, ldq, 0, G, s, lds, Ahead{});
    });
  } else if (by_channel) {
    // The first pass moves the cursor on by a channel's share of the span.
    const std::size_t span = KeySpan(task.keys, t0, n);
    WithChannels(task.keys, t0, [&](const auto& ch) {
      ChannelScores(ch, n, r, st.q, ldq, G, s, lds, kbuf, &cursor, span / r);
    });
    cursor.advance(span % r);
  } else {
    WithRows(task.keys.format, task.keys.row(t0), n, kbuf, ldk, [&](const auto& rows, int w) {
      Scores(rows, n, w, st.q, ldq, 0, G, s, lds, ahead(task.keys));
    });
  }

  // Online softmax, once per block: the block's max, the factor that
  // rescales what was accumulated so far (applied inside Accumulate), the
  // block's weights in place of its scores.
  for (int g = 0; g < G; ++g) {
    float* sg = s + g * lds;
    std::fill(sg + n, sg + lds, -std::numeric_limits<float>::infinity());
    const float m_new = std::max(st.m[g], Max(sg, lds));
    alpha[g] = 1.0f;
    if (m_new > st.m[g]) {
      alpha[g] = std::exp(st.m[g] - m_new);  // 0 on the first block
      st.l[g] *= alpha[g];
      st.m[g] = m_new;
    }
    st.l[g] += ExpShiftSum(st.m[g], sg, lds);
  }

  for (int vh = 0; vh < task.n_values; ++vh) {
    const PagedRows& V = task.values[vh];
    WithRows(V.format, V.row(t0), n, vbuf, ldv, [&](const auto& rows, int w) {
      Accumulate(rows, n, w, s, lds, alpha, vh * per_value, (vh + 1) * per_value, st.acc, ldv,
                 ahead(V));
    });
  }
}

void Finish(const AttentionShape& shape, const AttentionTask& task, const HeadState& st) {
  const int d = shape.head_dim, ldv = padded(d);
  for (int g = 0; g < task.n_queries; ++g) {
    const float inv = st.l[g] > 0 ? 1.0f / st.l[g] : 0.0f;
    for (int i = 0; i < d; ++i) task.out[g * d + i] = st.acc[g * ldv + i] * inv;
    if (task.lse)
      task.lse[g] =
          st.l[g] > 0 ? st.m[g] + std::log(st.l[g]) : -std::numeric_limits<float>::infinity();
  }
}

// Heads of one sequence over the same tokens, in lockstep: block by block,
// every head's rows of the block in turn. Heads' rows lie next to each other
// inside a block, so the thread reads one contiguous stretch per block
// instead of one short run per block and head; each run's cursor reaches
// into the next run in that order.
void AttendHeads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                 std::span<const LatentKeys* const> latents, AttentionScratch& scratch) {
  const int H = static_cast<int>(tasks.size());
  if (H == 0) return;
  const int BT = shape.block_tokens, begin = tasks[0].begin, end = tasks[0].end;
  auto latent_of = [&](int h) { return latents.empty() ? nullptr : latents[h]; };
  for (int h = 0; h < H; ++h) Start(shape, tasks[h], latent_of(h), StateOf(scratch, h));

  // Run number i in reading order: block b0 + i / H, head i % H.
  const int b0 = begin / BT;
  auto run_at = [&](long i) {
    const long b = b0 + i / H;
    const int tb = static_cast<int>(std::max<long>(begin, b * BT));
    if (tb >= end) return Run{};
    return Run{&tasks[i % H], tb, static_cast<int>(std::min<long>(end, (b + 1) * BT)) - tb};
  };

  long i = 0;
  for (int t0 = begin; t0 < end;) {
    const int t1 = std::min(end, (t0 / BT + 1) * BT);
    for (int h = 0; h < H; ++h, ++i)
      Block(shape, tasks[h], latent_of(h), scratch, StateOf(scratch, h), t0, t1, i == 0,
            run_at(i + 1));
    t0 = t1;
  }
  for (int h = 0; h < H; ++h) Finish(shape, tasks[h], StateOf(scratch, h));
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cstdlib>
#include <string>

#include "util/error.h"
#include "util/work_pool.h"

namespace thinkeys {

HWY_EXPORT(AttendHeads);
HWY_EXPORT(TargetName);

void AttentionScratch::Free::operator()(void* p) const { std::free(p); }

AttentionScratch::Buffer AttentionScratch::alloc(std::size_t floats) {
  const std::size_t bytes = (std::max<std::size_t>(floats, 1) * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw Error("cannot allocate attention scratch");
  std::memset(p, 0, bytes);
  return Buffer(static_cast<float*>(p));
}

AttentionScratch::AttentionScratch(const AttentionShape& sh) {
  if (sh.max_queries < 1 || sh.max_queries > kMaxQueries)
    throw Error("decode attention supports 1 to " + std::to_string(kMaxQueries) +
                " query heads per key head, not " + std::to_string(sh.max_queries));
  if (sh.max_heads < 1) throw Error("decode attention: max_heads must be at least 1");
  heads_ = sh.max_heads;
  const std::size_t H = sh.max_heads, G = sh.max_queries, BT = sh.block_tokens, d = sh.head_dim;
  const std::size_t qw = padded(std::max(sh.max_key_width, sh.head_dim));
  const std::size_t kw = padded((sh.max_share - 1) * sh.head_dim + static_cast<int>(qw));
  q_stride_ = G * qw;
  acc_stride_ = G * padded(sh.head_dim);
  state_stride_ = G;
  rope_half_ = d / 2;
  q_ = alloc(H * q_stride_);
  // Also the channel sums of quantized keys by channel (4 queries x tokens).
  k_ = alloc(std::max(BT * std::max(kw, qw), std::size_t{4} * padded(sh.block_tokens)));
  // Also int4 key rows gathered from channels (at most 2.5 bytes per value).
  c_ = alloc(BT * padded(sh.max_key_width));
  v_ = alloc(BT * padded(sh.head_dim));
  s_ = alloc(G * padded(sh.block_tokens));
  acc_ = alloc(H * acc_stride_);
  ml_ = alloc(2 * H * G);
  angles_ = alloc(d);  // the current token's (cos, sin) in float
  // Per head: its next token's (cos, sin) in double.
  void* p = std::aligned_alloc(64, (H * 2 * rope_half_ * sizeof(double) + 63) / 64 * 64 + 64);
  if (!p) throw Error("cannot allocate attention scratch");
  rope_.reset(static_cast<double*>(p));
}

RopeSteps make_rope_steps(std::span<const float> inv_freq, int block_tokens) {
  RopeSteps r;
  r.half = static_cast<int>(inv_freq.size());
  r.block_tokens = block_tokens;
  r.inv_freq.assign(inv_freq.begin(), inv_freq.end());
  for (int t = 0; t <= block_tokens; ++t)
    for (int i = 0; i < r.half; ++i) {
      r.cos.push_back(std::cos(t * r.inv_freq[i]));
      r.sin.push_back(std::sin(t * r.inv_freq[i]));
    }
  return r;
}

namespace {

void check_task(const AttentionShape& shape, const AttentionTask& task, const LatentKeys* latent) {
  if (task.n_queries < 1 || task.n_queries > shape.max_queries || task.n_values < 1 ||
      task.n_queries % task.n_values != 0)
    throw Error("decode attention: bad query/value head grouping");
  if (latent && (latent->share != task.n_values || task.keys.format.width > shape.max_key_width))
    throw Error("decode attention: latent keys must rebuild one slice per value head");
  if (task.keys.block_tokens != shape.block_tokens || task.begin < 0 || task.end < task.begin)
    throw Error("decode attention: task does not match the cache layout");
}

void check_scratch(const AttentionShape& shape, std::span<AttentionScratch> scratch, int threads) {
  if (static_cast<int>(scratch.size()) < threads)
    throw Error("decode attention needs one scratch per thread");
  for (int t = 0; t < threads; ++t)
    if (scratch[t].heads() < shape.max_heads)
      throw Error("decode attention: scratch was sized for fewer heads than the shape's max_heads");
}

// Heads that may run together: the same sequence's blocks, the same tokens.
bool same_tokens(const AttentionTask& a, const AttentionTask& b) {
  return a.keys.blocks == b.keys.blocks && a.begin == b.begin && a.end == b.end;
}

// Runs of consecutive tasks that read the same blocks over the same tokens,
// at most max_heads long: they run in lockstep (AttendHeads).
void group_heads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                 std::vector<HeadRange>& out) {
  out.clear();
  for (int i = 0; i < static_cast<int>(tasks.size());) {
    int j = i + 1;
    while (j < static_cast<int>(tasks.size()) && j - i < shape.max_heads &&
           same_tokens(tasks[j], tasks[i]))
      ++j;
    out.push_back({i, j - i});
    i = j;
  }
}

// What both pool runners start with: every task and the scratch checked,
// then the tasks grouped into heads that run together.
void check_and_group(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                     std::span<const LatentKeys* const> latents, const WorkPool& pool,
                     std::span<AttentionScratch> scratch, std::vector<HeadRange>& ranges) {
  check_scratch(shape, scratch, pool.threads());
  for (std::size_t i = 0; i < tasks.size(); ++i)
    check_task(shape, tasks[i], latents.empty() ? nullptr : latents[i]);
  group_heads(shape, tasks, ranges);
}

void attend(const AttentionShape& shape, std::span<const AttentionTask> tasks,
            std::span<const LatentKeys* const> latents, AttentionScratch& scratch) {
  HWY_DYNAMIC_DISPATCH(AttendHeads)(shape, tasks, latents, scratch);
}

void run_ranges(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                std::span<const LatentKeys* const> latents, std::span<const HeadRange> ranges,
                WorkPool& pool, std::span<AttentionScratch> scratch) {
  pool.run(static_cast<int>(ranges.size()), [&](int i, int thread) {
    const HeadRange r = ranges[i];
    attend(shape, tasks.subspan(r.first, r.count),
           latents.empty() ? latents : latents.subspan(r.first, r.count), scratch[thread]);
  });
}

}  // namespace

void decode_attention(const AttentionShape& shape, const AttentionTask& task,
                      const LatentKeys* latent, AttentionScratch& scratch) {
  check_task(shape, task, latent);
  attend(shape, std::span<const AttentionTask>(&task, 1),
         latent ? std::span<const LatentKeys* const>(&latent, 1)
                : std::span<const LatentKeys* const>(),
         scratch);
}

void decode_attention_heads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                            std::span<const LatentKeys* const> latents, AttentionScratch& scratch) {
  if (static_cast<int>(tasks.size()) > scratch.heads())
    throw Error("decode attention: more heads than the scratch was sized for");
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    check_task(shape, tasks[i], latents.empty() ? nullptr : latents[i]);
    if (!same_tokens(tasks[i], tasks[0]))
      throw Error("decode attention: heads run together must share blocks and tokens");
  }
  attend(shape, tasks, latents, scratch);
}

void run_decode_attention(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                          std::span<const LatentKeys* const> latents, WorkPool& pool,
                          std::span<AttentionScratch> scratch) {
  thread_local std::vector<HeadRange> ranges;  // reused: steady decoding allocates nothing
  check_and_group(shape, tasks, latents, pool, scratch, ranges);
  run_ranges(shape, tasks, latents, ranges, pool, scratch);
}

AttentionSplits::AttentionSplits(int min_blocks, int per_thread)
    : min_blocks_(std::max(1, min_blocks)), per_thread_(std::max(1, per_thread)) {}

void AttentionSplits::run(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                          std::span<const LatentKeys* const> latents, WorkPool& pool,
                          std::span<AttentionScratch> scratch) {
  check_and_group(shape, tasks, latents, pool, scratch, ranges_);
  const int n = static_cast<int>(ranges_.size());
  const int want = pool.threads() * per_thread_;
  pieces_.clear();
  piece_ranges_.clear();
  if (n == 0 || n >= want) return run_ranges(shape, tasks, latents, ranges_, pool, scratch);

  // Range i becomes count_[i] pieces of whole blocks; piece p of it holds
  // its heads at pieces_[first_[i] + p * heads ...].
  const int BT = shape.block_tokens, per_range = (want + n - 1) / n;
  piece_latents_.clear();
  first_.assign(n, 0);
  count_.assign(n, 1);
  std::size_t out_floats = 0, lse_floats = 0;
  for (int i = 0; i < n; ++i) {
    const HeadRange r = ranges_[i];
    const AttentionTask& t0 = tasks[r.first];
    const int b0 = t0.begin / BT, b1 = (t0.end + BT - 1) / BT;
    count_[i] = std::clamp((b1 - b0) / min_blocks_, 1, per_range);
    first_[i] = static_cast<int>(pieces_.size());
    for (int p = 0; p < count_[i]; ++p) {
      piece_ranges_.push_back({static_cast<int>(pieces_.size()), r.count});
      for (int h = 0; h < r.count; ++h) {
        const AttentionTask& t = tasks[r.first + h];
        AttentionTask piece = t;
        if (count_[i] > 1) {
          const int nb = b1 - b0;
          piece.begin = std::max(t.begin, (b0 + p * nb / count_[i]) * BT);
          piece.end = std::min(t.end, (b0 + (p + 1) * nb / count_[i]) * BT);
          out_floats += static_cast<std::size_t>(t.n_queries) * shape.head_dim;
          lse_floats += t.n_queries;
        }
        pieces_.push_back(piece);
        if (!latents.empty()) piece_latents_.push_back(latents[r.first + h]);
      }
    }
  }
  if (out_.size() < out_floats) out_.resize(out_floats);
  if (lse_.size() < lse_floats) lse_.resize(lse_floats);
  std::size_t at_out = 0, at_lse = 0;
  for (int i = 0; i < n; ++i) {
    if (count_[i] == 1) continue;
    const int heads = ranges_[i].count;
    for (int k = 0; k < count_[i] * heads; ++k) {
      AttentionTask& piece = pieces_[first_[i] + k];
      piece.out = out_.data() + at_out;
      piece.lse = lse_.data() + at_lse;
      at_out += static_cast<std::size_t>(piece.n_queries) * shape.head_dim;
      at_lse += piece.n_queries;
    }
  }
  run_ranges(shape, pieces_, piece_latents_, piece_ranges_, pool, scratch);

  // out = sum_p e^{lse_p - M} out_p / sum_p e^{lse_p - M}, per query.
  const int d = shape.head_dim;
  for (int i = 0; i < n; ++i) {
    if (count_[i] == 1) continue;
    const int heads = ranges_[i].count;
    for (int h = 0; h < heads; ++h) {
      const AttentionTask& t = tasks[ranges_[i].first + h];
      auto piece = [&](int p) -> const AttentionTask& {
        return pieces_[first_[i] + p * heads + h];
      };
      for (int g = 0; g < t.n_queries; ++g) {
        float M = -std::numeric_limits<float>::infinity();
        for (int p = 0; p < count_[i]; ++p) M = std::max(M, piece(p).lse[g]);
        float* out = t.out + static_cast<std::size_t>(g) * d;
        std::fill(out, out + d, 0.0f);
        if (M == -std::numeric_limits<float>::infinity()) {
          if (t.lse) t.lse[g] = M;
          continue;
        }
        float z = 0;
        for (int p = 0; p < count_[i]; ++p) {
          const float w = std::exp(piece(p).lse[g] - M);
          z += w;
          const float* o = piece(p).out + static_cast<std::size_t>(g) * d;
          for (int k = 0; k < d; ++k) out[k] += w * o[k];
        }
        for (int k = 0; k < d; ++k) out[k] /= z;
        if (t.lse) t.lse[g] = M + std::log(z);
      }
    }
  }
}

const char* decode_attention_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace thinkeys
#endif  // HWY_ONCE

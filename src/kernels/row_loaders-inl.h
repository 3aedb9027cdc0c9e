// Stored rows and channels as f32, per cache format: decoders of whole rows
// into scratch (float dtypes converted, int8/int4 levels times their group
// scales); row loaders that hand out a vector of lanes of row t straight from
// the cache where the format allows (WithRows picks one); and channel
// loaders for keys stored by channel (PagedRows::by_channel, WithChannels
// picks one). Per-target Highway code, included by decode_attention.cpp once
// per instruction set (foreach_target); not a standalone header.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "format/paged_rows.h"
#include "format/row_codec.h"

#if defined(THINKEYS_KERNELS_ROW_LOADERS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_ROW_LOADERS_INL_H_
#undef THINKEYS_KERNELS_ROW_LOADERS_INL_H_
#else
#define THINKEYS_KERNELS_ROW_LOADERS_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
// clang-format on

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
  const std::byte* scales = keys.part(t0) + keys.channels_bytes() + RowFormat::kScaleBytes * slot0;
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

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_ROW_LOADERS_INL_H_

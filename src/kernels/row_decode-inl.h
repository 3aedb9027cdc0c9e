// Stored rows to f32: float dtypes converted, int8/int4 levels times their
// group scales. Per-target Highway code, included by decode_attention.cpp
// once per instruction set (foreach_target); not a standalone header.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "format/row_codec.h"

#if defined(THINKEYS_KERNELS_ROW_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_ROW_DECODE_INL_H_
#undef THINKEYS_KERNELS_ROW_DECODE_INL_H_
#else
#define THINKEYS_KERNELS_ROW_DECODE_INL_H_
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

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_ROW_DECODE_INL_H_

// Row loaders: a vector of lanes of stored row t as f32, read straight from
// the cache where the format allows (float dtypes, quantized rows whose
// vectors stay in one group) or from rows decoded into scratch, and WithRows,
// which picks one. Per-target Highway code for decode_attention.cpp.
#include <cstddef>
#include <cstdint>

#include "format/row_codec.h"

#if defined(THINKEYS_KERNELS_ROW_LOADERS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_ROW_LOADERS_INL_H_
#undef THINKEYS_KERNELS_ROW_LOADERS_INL_H_
#else
#define THINKEYS_KERNELS_ROW_LOADERS_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
#include "kernels/row_decode-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

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

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_ROW_LOADERS_INL_H_

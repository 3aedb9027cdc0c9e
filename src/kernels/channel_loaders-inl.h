// Channel loaders for keys stored by channel (PagedRows::by_channel): a
// vector of tokens of one channel as f32, per format, and WithChannels,
// which picks one. Per-target Highway code for decode_attention.cpp.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "format/paged_rows.h"
#include "format/row_codec.h"

#if defined(THINKEYS_KERNELS_CHANNEL_LOADERS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_CHANNEL_LOADERS_INL_H_
#undef THINKEYS_KERNELS_CHANNEL_LOADERS_INL_H_
#else
#define THINKEYS_KERNELS_CHANNEL_LOADERS_INL_H_
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

#endif  // THINKEYS_KERNELS_CHANNEL_LOADERS_INL_H_

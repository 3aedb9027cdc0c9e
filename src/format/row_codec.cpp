#include "format/row_codec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace thinkeys {

uint16_t f32_to_f16(float f) {
  _Float16 v = static_cast<_Float16>(f);
  uint16_t h;
  std::memcpy(&h, &v, 2);
  return h;
}

float bf16_to_f32(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

float row_scale(const RowFormat& f, const std::byte* row, int g) {
  return group_scale(row + f.scale_offset(), g);
}

uint16_t f16_scale_at_least(float s) {
  constexpr uint16_t kMaxFinite = 0x7BFF;  // 65504
  if (!(s > 0)) return 0;
  if (s >= 65504.0f) return kMaxFinite;
  uint16_t h = f32_to_f16(s);
  // Positive finite halves order like their bit patterns: one step up is +1.
  if (f16_to_f32(h) < s) ++h;
  return h;
}

void hadamard_rotate(float* x, int n) {
  for (int len = 1; len < n; len *= 2)
    for (int i = 0; i < n; i += 2 * len)
      for (int j = i; j < i + len; ++j) {
        const float a = x[j], b = x[j + len];
        x[j] = a + b;
        x[j + len] = a - b;
      }
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  for (int i = 0; i < n; ++i) x[i] *= norm;
}

void encode_row(const RowFormat& f, const float* src, std::byte* dst) {
  const int w = f.width;
  float rotated[kMaxRotatedWidth];
  if (f.rotated) {
    std::copy(src, src + w, rotated);
    hadamard_rotate(rotated, w);
    src = rotated;
  }
  switch (f.dtype) {
    case CacheDType::F32:
      std::memcpy(dst, src, 4 * static_cast<std::size_t>(w));
      return;
    case CacheDType::F16:
    case CacheDType::BF16:
      for (int i = 0; i < w; ++i) {
        uint16_t h = f.dtype == CacheDType::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case CacheDType::Int8:
    case CacheDType::Int4:
      break;
  }
  // Quantized: fill both nibbles with the zero level first, so an odd width
  // leaves a defined high nibble in the last byte.
  const int levels = f.levels();
  const int half = (w + 1) / 2;
  if (f.dtype == CacheDType::Int4) std::memset(dst, 0x88, f.data_bytes());
  for (int g = 0; g < f.groups(); ++g) {
    const int b = g * f.group, e = std::min(w, b + f.group);
    float amax = 0;
    for (int i = b; i < e; ++i) amax = std::max(amax, std::fabs(src[i]));
    const uint16_t h = f16_scale_at_least(amax / static_cast<float>(levels));
    const float s = f16_to_f32(h);
    const float inv = s > 0 ? 1.0f / s : 0.0f;
    for (int i = b; i < e; ++i) {
      const int q = std::clamp(static_cast<int>(std::nearbyint(src[i] * inv)), -levels, levels);
      if (f.dtype == CacheDType::Int8) {
        dst[i] = static_cast<std::byte>(static_cast<int8_t>(q));
      } else if (i < half) {
        dst[i] = (dst[i] & std::byte{0xF0}) | static_cast<std::byte>(q + 8);
      } else {
        dst[i - half] = (dst[i - half] & std::byte{0x0F}) | static_cast<std::byte>((q + 8) << 4);
      }
    }
    std::memcpy(dst + f.scale_offset() + RowFormat::kScaleBytes * g, &h, sizeof(h));
  }
}

void decode_row(const RowFormat& f, const std::byte* src, float* dst) {
  const int w = f.width;
  switch (f.dtype) {
    case CacheDType::F32:
      std::memcpy(dst, src, 4 * static_cast<std::size_t>(w));
      return;
    case CacheDType::F16:
    case CacheDType::BF16:
      for (int i = 0; i < w; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f.dtype == CacheDType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    case CacheDType::Int8:
      for (int i = 0; i < w; ++i)
        dst[i] = static_cast<float>(static_cast<int8_t>(src[i])) * row_scale(f, src, i / f.group);
      break;
    case CacheDType::Int4: {
      const int half = (w + 1) / 2;
      for (int i = 0; i < w; ++i) {
        const unsigned byte = static_cast<unsigned>(src[i < half ? i : i - half]);
        const int q = static_cast<int>(i < half ? (byte & 15u) : (byte >> 4)) - 8;
        dst[i] = static_cast<float>(q) * row_scale(f, src, i / f.group);
      }
      break;
    }
  }
  if (f.rotated) hadamard_rotate(dst, w);
}

}  // namespace thinkeys

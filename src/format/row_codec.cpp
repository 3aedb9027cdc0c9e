#include "format/row_codec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "format/half_rows.h"

namespace thinkeys {

#if defined(__FLT16_MAX__)
uint16_t f32_to_f16(float f) {
  _Float16 v = static_cast<_Float16>(f);
  uint16_t h;
  std::memcpy(&h, &v, 2);
  return h;
}
#else
// Compilers without _Float16 on this target (clang < 15 on x86-64, used by the
// sanitizer build): the same round-to-nearest-even conversion in integer ops.
uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00u | static_cast<uint16_t>((a >> 13) & 0x3FFu);  // NaN
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity
  if (a < 0x38800000u) {                        // below 2^-14: f16 subnormal or zero
    if (a < 0x33000000u) return sign;           // below 2^-25 rounds to zero
    const uint32_t shift = 126 - (a >> 23);     // 14..24
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return sign | static_cast<uint16_t>(q);
  }
  const uint32_t r = a - 0x38000000u;  // rebias the exponent from 127 to 15
  uint32_t q = r >> 13;
  const uint32_t rem = r & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;  // a carry may reach infinity
  return sign | static_cast<uint16_t>(q);
}
#endif

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
      return f32_to_f16_row(src, static_cast<std::size_t>(w), dst);
    case CacheDType::BF16:
      for (int i = 0; i < w; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
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

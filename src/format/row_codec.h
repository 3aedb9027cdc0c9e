#pragma once
// Conversion of one cache row between f32 and its stored form (RowFormat).
// The write path runs once per token per head, so these are plain loops; the
// decode kernels have their own vectorized readers that must agree with
// decode_row bit for bit on the quantized types.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "format/cache_dtype.h"

namespace thinkeys {

// Rotated formats (RowFormat::rotated) store H x for the normalized
// Walsh-Hadamard matrix H; decode_row returns rows in the original basis.
void encode_row(const RowFormat& format, const float* src, std::byte* dst);
void decode_row(const RowFormat& format, const std::byte* src, float* dst);

// x <- H x with H the n x n Walsh-Hadamard matrix scaled by 1 / sqrt(n):
// orthogonal, symmetric and its own inverse. n must be a power of two.
void hadamard_rotate(float* x, int n);

// Scale of group g of an encoded row (quantized formats only).
float row_scale(const RowFormat& format, const std::byte* row, int g);
// The f16 bits of the smallest half >= s (0 for s <= 0, 65504 when s is
// beyond the half range): quantizing by it never needs a level past the top.
uint16_t f16_scale_at_least(float s);

// Exact, and inline with integer ops: the kernels convert a row's f16 scale
// per vector, and without F16C a _Float16 cast is a libgcc call.
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24
    const float f = static_cast<float>(man) * 0x1p-24f;
    return sign ? -f : f;
  }
  const uint32_t bits =
      sign | (exp == 0x1F ? 0x7F800000u | (man << 13) : ((exp + 112) << 23) | (man << 13));
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}
uint16_t f32_to_f16(float f);  // round to nearest even

// Scale g of a quantized row whose scales start at `scales` (f16 each).
inline float group_scale(const std::byte* scales, int g) {
  uint16_t h;
  std::memcpy(&h, scales + RowFormat::kScaleBytes * g, sizeof(h));
  return f16_to_f32(h);
}
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);  // round to nearest even

}  // namespace thinkeys

#pragma once
// Conversion of one cache row between f32 and its stored form (RowFormat).
// The write path runs once per token per head, so these are plain loops; the
// decode kernels have their own vectorized readers that must agree with
// decode_row bit for bit on the quantized types.
#include <cstddef>
#include <cstdint>

#include "cache/cache_dtype.h"

namespace thinkeys {

void encode_row(const RowFormat& format, const float* src, std::byte* dst);
void decode_row(const RowFormat& format, const std::byte* src, float* dst);

// Scale of group g of an encoded row (quantized formats only).
float row_scale(const RowFormat& format, const std::byte* row, int g);
// The f16 bits of the smallest half >= s (0 for s <= 0, 65504 when s is
// beyond the half range): quantizing by it never needs a level past the top.
uint16_t f16_scale_at_least(float s);

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);  // round to nearest even

}  // namespace thinkeys

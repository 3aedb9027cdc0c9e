#pragma once
// Element types of the paged KV cache and the byte layout of one cached row
// (one token of one head). Keys and values choose their dtypes independently.
#include <cstddef>
#include <cstdint>
#include <string>

namespace thinkeys {

enum class CacheDType : uint8_t { F32, F16, BF16, Int8, Int4 };

const char* to_string(CacheDType t);
CacheDType parse_cache_dtype(const std::string& name);  // throws Error on unknown names
bool is_quantized(CacheDType t);

// Values per quantization group unless the caller says otherwise: small enough
// that one outlier does not flatten its neighbours, large enough that the f16
// scale adds only half a bit per value.
inline constexpr int kDefaultQuantGroup = 32;

// One cached row: `width` values, then (quantized types only) one IEEE f16
// scale per group of `group` consecutive values. s is the smallest f16 at or
// above max|x| / levels (127 for int8, 7 for int4), so no level overflows:
// int8 stores round(x / s); int4 stores round(x / s) + 8, element i < half in
// the low nibble of byte i and element half + i in its high nibble
// (half = ceil(width / 2)), so both halves unpack with whole-vector ops.
// Either way |x - s * q| <= s / 2. An f16 scale (not f32) matters for thin
// keys: a 32-wide int4 row is 16 + 2 bytes, 14.2x fewer than 128 f16 values
// (f32 would make it 20 bytes, 12.8x). Groups whose max|x| / levels exceeds
// the f16 range (65504) saturate, as an f16 cache would.
struct RowFormat {
  CacheDType dtype = CacheDType::F32;
  int width = 0;
  int group = 0;         // 0 for float types
  bool rotated = false;  // stores H x (Walsh-Hadamard, see make_row_format)
  // Non-zero in a view (leading_elements): the rows are this many bytes apart
  // and the view reads the first `width` elements of each.
  std::size_t stride = 0;

  int groups() const { return group > 0 ? (width + group - 1) / group : 0; }
  // Inline: decode attention asks for it per block and head.
  std::size_t data_bytes() const {
    const auto w = static_cast<std::size_t>(width);
    switch (dtype) {
      case CacheDType::F32:
        return 4 * w;
      case CacheDType::F16:
      case CacheDType::BF16:
        return 2 * w;
      case CacheDType::Int8:
        return w;
      case CacheDType::Int4:
        return (w + 1) / 2;
    }
    return 0;
  }
  std::size_t scale_offset() const { return data_bytes(); }
  static constexpr std::size_t kScaleBytes = 2;  // f16
  std::size_t bytes() const { return stride ? stride : data_bytes() + kScaleBytes * groups(); }
  // Largest representable level: the scale of a group is max|x| / levels().
  int levels() const;
};

// The first `width` elements of every row stored as `rows`, read in place: an
// MLA cache row is [latent ; rotated RoPE key], and its latent is also the
// value (decode attention reads it as the value rows without a second copy).
// Float dtypes only: a quantized row's scales cover the whole row.
RowFormat leading_elements(const RowFormat& rows, int width);

// Widest row that may be rotated (the encoder rotates in a stack buffer).
inline constexpr int kMaxRotatedWidth = 1024;

// Clamps the group to the row width (a rank-3 key gets one scale, not a
// 32-wide group of which 29 are padding). rotate asks for the Hadamard
// rotation, granted for quantized rows whose width is a power of two from 2
// to kMaxRotatedWidth: a key with one outlier channel (common, and the rule
// for thin keys, whose channels carry unequal singular values) otherwise sets
// the group scale alone and the other channels round to a few levels; after
// the rotation every stored value mixes all channels, the scale follows the
// row's norm, and scores are unchanged because the query is rotated alike
// (q . k = Hq . Hk). This is the QuaRot/"rotate before quantizing" idea.
RowFormat make_row_format(CacheDType dtype, int width, int group = kDefaultQuantGroup,
                          bool rotate = false);

}  // namespace thinkeys

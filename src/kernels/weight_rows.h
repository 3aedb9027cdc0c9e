#pragma once
// How a weight matrix [rows, cols] sits in memory, in any of the dtypes decode
// reads directly: f32, the two 16-bit floats a checkpoint comes in, or int8
// levels with one scale per group of kWeightGroup consecutive columns of a
// row (symmetric: w ~= level * scale, level in [-127, 127]), held as f16 in
// units of kInt8ScaleUnit.
//
// Int8 matrices are held packed for the decode kernel (kernels/packed_gemm.h),
// not row by row. Rows go in blocks of kInt8BlockRows; a block holds its
// column groups in turn, a group its 32 column pairs in turn, and a pair the
// block's 16 rows with two levels each. So one 32-byte load, widened to
// int16, is 16 output rows times two columns: one pairwise multiply-add by
// the broadcast activation pair advances 16 outputs, and one f32 epilogue
// (convert, scale, add) serves 1,024 weights instead of 64, the work that
// bounded the row-major kernel. Element (o, i) lies at byte
//   (o / 16) * block_bytes + (i / 64) * 1024 + (i % 64) / 2 * 32 + (o % 16) * 2 + i % 2,
// block_bytes = weight_groups(cols) * 1024, and its scale at element
//   (o / 16) * weight_groups(cols) * 16 + (i / 64) * 16 + o % 16.
// Rows past the last and columns past the last group hold zero levels and
// zero scales.
//
// Int4 matrices (levels in [-8, 7], one scale per kInt4Group columns, scales
// as int8's but signed) pack the same blocks of 16 rows at half the bytes: a group of 32
// columns is 8 column quads of 32 bytes, and byte 2j + e of a quad holds row
// j's columns 4q + e (low nibble) and 4q + 2 + e (high nibble). One 32-byte
// load widened to int16 is then two column pairs for the 16 rows: the low
// nibbles by two shifts, the high ones by one (kernels/packed_gemm.h).
#include <cstddef>
#include <cstdint>

#include "format/row_codec.h"

namespace thinkeys {

enum class WeightType : uint8_t { F32, BF16, F16, Int8, Int4 };

// Columns per int8 scale: a group of 64 costs 2 bytes of scale per 64 bytes of
// levels (1.03125 bytes a weight; f32 scales made it 1.0625), and its levels
// fill whole vectors on every x86 target.
inline constexpr int kWeightGroup = 64;

// What an int8 scale's f16 counts in. A scale is max |w| / 127 of its group,
// so f16's normal range [2^-14, 65504] holds groups whose largest weight lies
// in [7.6e-6, 8,125]; quantize_int8_rows refuses larger ones, and rounds
// the scales of smaller ones up by less than 2^-34 (absolute) instead of
// 2^-10 (relative). A power of two, so applying it is exact.
inline constexpr float kInt8ScaleUnit = 0x1p-10f;

inline constexpr int kInt8BlockRows = 16;

// Columns per int4 scale: llama.cpp's Q4_0 group, 4.5 bits a weight with the
// f16 scale; int4 needs the smaller group more than int8 (7 levels a side
// against 127).
inline constexpr int kInt4Group = 32;

struct WeightRows {
  WeightType type = WeightType::F32;
  // F32, BF16, F16: element (o, i) at data + o * ld + i (ld in elements).
  // Int8, Int4: the packed blocks above, ld = bytes per block of 16 rows.
  const void* data = nullptr;
  std::size_t ld = 0;
  const uint16_t* scales = nullptr;  // Int8, Int4: f16 bits, packed as the levels
  std::size_t ld_scales = 0;         // Int8, Int4: scales per block of 16 rows

  // The same layout from row `first` on (for Int8 and Int4 a multiple of 16).
  WeightRows from_row(std::size_t first) const;
};

inline int weight_groups(int cols) { return (cols + kWeightGroup - 1) / kWeightGroup; }
inline int int8_blocks(int rows) { return (rows + kInt8BlockRows - 1) / kInt8BlockRows; }
// Columns an int8 matrix is padded to, and the activation rows multiplying it.
inline int int8_padded_cols(int cols) { return weight_groups(cols) * kWeightGroup; }
inline std::size_t int8_block_bytes(int cols) {
  return static_cast<std::size_t>(int8_padded_cols(cols)) * kInt8BlockRows;
}

inline bool packed_weights(WeightType t) { return t == WeightType::Int8 || t == WeightType::Int4; }

// Int4: scale groups per row (the columns padded as int8's, to whole
// activation rows), bytes per block of 16 rows, and bytes per (padded) row.
inline int int4_groups(int cols) { return int8_padded_cols(cols) / kInt4Group; }
inline std::size_t int4_block_bytes(int cols) {
  return static_cast<std::size_t>(int8_padded_cols(cols)) * kInt8BlockRows / 2;
}
// Bytes one row of a matrix `cols` wide takes in `t`, padding included.
std::size_t weight_row_bytes(WeightType t, int cols);

// Where element (o, i) of a packed int8 matrix keeps its level (bytes from
// data) and its scale (elements from scales).
inline std::size_t int8_level_offset(const WeightRows& w, int o, int i) {
  return (o / kInt8BlockRows) * w.ld + (i / kWeightGroup) * 1024 + (i % kWeightGroup) / 2 * 32 +
         (o % kInt8BlockRows) * 2 + i % 2;
}
inline std::size_t int8_scale_offset(const WeightRows& w, int o, int i) {
  return (o / kInt8BlockRows) * w.ld_scales + (i / kWeightGroup) * kInt8BlockRows +
         o % kInt8BlockRows;
}
inline float int8_scale(const WeightRows& w, int o, int i) {
  return f16_to_f32(w.scales[int8_scale_offset(w, o, i)]) * kInt8ScaleUnit;
}
inline float int8_value(const WeightRows& w, int o, int i) {
  return static_cast<float>(static_cast<const int8_t*>(w.data)[int8_level_offset(w, o, i)]) *
         int8_scale(w, o, i);
}

// Element (o, i) of a packed int4 matrix: the byte holding its level (from
// data), which nibble (0 low, 1 high), and its scale (elements from scales).
inline std::size_t int4_level_byte(const WeightRows& w, int o, int i) {
  return (o / kInt8BlockRows) * w.ld + (i / kInt4Group) * 256 + (i % kInt4Group) / 4 * 32 +
         (o % kInt8BlockRows) * 2 + i % 2;
}
inline int int4_nibble(int i) { return (i % 4) / 2; }
inline std::size_t int4_scale_offset(const WeightRows& w, int o, int i) {
  return (o / kInt8BlockRows) * w.ld_scales + (i / kInt4Group) * kInt8BlockRows +
         o % kInt8BlockRows;
}
inline int int4_level(const WeightRows& w, int o, int i) {
  const auto byte = static_cast<const uint8_t*>(w.data)[int4_level_byte(w, o, i)];
  const int nibble = int4_nibble(i) == 0 ? byte & 15 : byte >> 4;
  return nibble >= 8 ? nibble - 16 : nibble;
}
inline float int4_value(const WeightRows& w, int o, int i) {
  return static_cast<float>(int4_level(w, o, i)) *
         (f16_to_f32(w.scales[int4_scale_offset(w, o, i)]) * kInt8ScaleUnit);
}

// Packs row-major levels and scales ([rows, weight_groups(cols)]) into
// `packed` (int8_blocks(rows) * int8_block_bytes(cols) bytes) and
// `packed_scales` (int8_blocks(rows) * weight_groups(cols) * 16 f16s in
// units of kInt8ScaleUnit, to nearest; quantize_int8_rows' scales are exact
// there), padding included.
void pack_int8_rows(const int8_t* levels, std::size_t ld_levels, const float* scales,
                    std::size_t ld_scales, int rows, int cols, int8_t* packed,
                    uint16_t* packed_scales);
// As pack_int8_rows for int4: levels in [-8, 7], scales [rows,
// ceil(cols / kInt4Group)]; `packed` holds int8_blocks(rows) *
// int4_block_bytes(cols) bytes, `packed_scales` int8_blocks(rows) *
// int4_groups(cols) * 16 f16s.
void pack_int4_rows(const int8_t* levels, std::size_t ld_levels, const float* scales,
                    std::size_t ld_scales, int rows, int cols, uint8_t* packed,
                    uint16_t* packed_scales);
// Bytes per element of a row-major type (F32, BF16, F16; Int8 1).
std::size_t weight_type_bytes(WeightType t);
const char* weight_type_name(WeightType t);

// out[(o - row_begin) * cols + i] = the f32 value of element (o, i), for rows
// [row_begin, row_end): embedding lookups and GEMM tiles convert through it.
void weight_rows_to_f32(const WeightRows& w, int cols, int row_begin, int row_end, float* out);

// Int8 levels and scales of an f32 matrix: per group, scale = the smallest
// f16 multiple of kInt8ScaleUnit >= max |w| / 127 (at most 2^-10 above it;
// 0 for an all-zero group) and level = round(w / scale), so every element is
// within scale / 2 of level * scale. Throws where max |w| / 127 is past the
// f16 range in those units.
void quantize_int8_rows(const float* w, std::size_t ldw, int rows, int cols, int8_t* levels,
                        std::size_t ld_levels, float* scales, std::size_t ld_scales);
// Int4 levels in [-8, 7] and one scale per kInt4Group columns (scales [rows,
// ceil(cols / kInt4Group)], signed f16 multiples of kInt8ScaleUnit), by a
// search as llama.cpp's k-quants do rather than plain rounding: |scale| =
// max |w| / c (rounded up to f16), c in {8, 7.5, 7, 6.5}, signed so that the
// largest |w| falls on the negative side, where there is an eighth level;
// the c with the least squared error over the group is kept. c = 7 is plain
// rounding (scale max |w| / 7, as int8's), so no group errs more than plain
// rounding would; c = 8 is llama.cpp's Q4_0 rule. Throws where max |w| is
// past 447 (7 x the largest f16 scale).
void quantize_int4_rows(const float* w, std::size_t ldw, int rows, int cols, int8_t* levels,
                        std::size_t ld_levels, float* scales, std::size_t ld_scales);

}  // namespace thinkeys

#pragma once
// How a weight matrix [rows, cols] sits in memory, in any of the dtypes decode
// reads directly: f32, the two 16-bit floats a checkpoint comes in, or int8
// levels with one f32 scale per group of kWeightGroup consecutive columns of
// a row (symmetric: w ~= level * scale, level in [-127, 127]).
#include <cstddef>
#include <cstdint>

namespace thinkeys {

enum class WeightType : uint8_t { F32, BF16, F16, Int8 };

// Columns per int8 scale: a group of 64 costs 4 bytes of scale per 64 bytes of
// levels (1.0625 bytes a weight), and its levels fill whole vectors on every
// x86 target.
inline constexpr int kWeightGroup = 64;

struct WeightRows {
  WeightType type = WeightType::F32;
  const void* data = nullptr;     // element (o, i) at data + o * ld + i
  std::size_t ld = 0;             // elements between rows
  const float* scales = nullptr;  // Int8: scale (o, g) at scales[o * ld_scales + g]
  std::size_t ld_scales = 0;

  // The same layout from row `first` on.
  WeightRows from_row(std::size_t first) const;
};

inline int weight_groups(int cols) { return (cols + kWeightGroup - 1) / kWeightGroup; }
std::size_t weight_type_bytes(WeightType t);
const char* weight_type_name(WeightType t);

// out[(o - row_begin) * cols + i] = the f32 value of element (o, i), for rows
// [row_begin, row_end): embedding lookups and GEMM tiles convert through it.
void weight_rows_to_f32(const WeightRows& w, int cols, int row_begin, int row_end, float* out);

// Int8 levels and scales of an f32 matrix: per group, scale = max |w| / 127
// (0 for an all-zero group) and level = round(w / scale), so every element is
// within scale / 2 of level * scale.
void quantize_int8_rows(const float* w, std::size_t ldw, int rows, int cols, int8_t* levels,
                        std::size_t ld_levels, float* scales, std::size_t ld_scales);

}  // namespace thinkeys

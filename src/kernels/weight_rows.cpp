#include "kernels/weight_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "format/row_codec.h"
#include "util/enum_names.h"
#include "util/error.h"

namespace thinkeys {

WeightRows WeightRows::from_row(std::size_t first) const {
  WeightRows r = *this;
  if (packed_weights(type)) {
    if (first % kInt8BlockRows != 0)
      throw Error(std::string(weight_type_name(type)) +
                  " weights are packed in blocks of 16 rows; row " + std::to_string(first) +
                  " does not start one");
    r.data = static_cast<const std::byte*>(data) + first / kInt8BlockRows * ld;
    r.scales = scales + first / kInt8BlockRows * ld_scales;
    return r;
  }
  r.data = static_cast<const std::byte*>(data) + first * ld * weight_type_bytes(type);
  if (scales) r.scales = scales + first * ld_scales;
  return r;
}

std::size_t weight_type_bytes(WeightType t) {
  switch (t) {
    case WeightType::F32:
      return 4;
    case WeightType::BF16:
    case WeightType::F16:
      return 2;
    case WeightType::Int8:
    case WeightType::Int4:  // no whole byte per element: weight_row_bytes
      return 1;
  }
  return 4;
}

std::size_t weight_row_bytes(WeightType t, int cols) {
  if (t == WeightType::Int8) return int8_padded_cols(cols);
  if (t == WeightType::Int4) return int8_padded_cols(cols) / 2;
  return weight_type_bytes(t) * cols;
}

const char* weight_type_name(WeightType t) {
  static constexpr EnumName<WeightType> kNames[] = {{WeightType::F32, "f32"},
                                                    {WeightType::BF16, "bf16"},
                                                    {WeightType::F16, "f16"},
                                                    {WeightType::Int8, "int8"},
                                                    {WeightType::Int4, "int4"}};
  return enum_name<WeightType>(kNames, t);
}

void weight_rows_to_f32(const WeightRows& w, int cols, int row_begin, int row_end, float* out) {
  for (int o = row_begin; o < row_end; ++o, out += cols) {
    const std::size_t base = static_cast<std::size_t>(o) * w.ld;
    switch (w.type) {
      case WeightType::F32:
        std::memcpy(out, static_cast<const float*>(w.data) + base, cols * sizeof(float));
        break;
      case WeightType::BF16: {
        const auto* p = static_cast<const uint16_t*>(w.data) + base;
        for (int i = 0; i < cols; ++i) out[i] = bf16_to_f32(p[i]);
        break;
      }
      case WeightType::F16: {
        const auto* p = static_cast<const uint16_t*>(w.data) + base;
        for (int i = 0; i < cols; ++i) out[i] = f16_to_f32(p[i]);
        break;
      }
      case WeightType::Int8: {
        // Walks the row's pairs in storage order (prefill tiles on CPUs
        // without AVX512-BF16 convert every weight through here): a row's
        // two levels of a column pair sit 32 bytes after the previous pair's.
        const auto* levels = static_cast<const int8_t*>(w.data) + int8_level_offset(w, o, 0);
        for (int g = 0; g * kWeightGroup < cols; ++g) {
          const int8_t* pair = levels + g * (kWeightGroup * kInt8BlockRows);
          const float s = int8_scale(w, o, g * kWeightGroup);
          const int end = std::min(cols, (g + 1) * kWeightGroup);
          for (int i = g * kWeightGroup; i < end; i += 2, pair += 2 * kInt8BlockRows) {
            out[i] = static_cast<float>(pair[0]) * s;
            if (i + 1 < end) out[i + 1] = static_cast<float>(pair[1]) * s;
          }
        }
        break;
      }
      case WeightType::Int4:
        for (int i = 0; i < cols; ++i) out[i] = int4_value(w, o, i);
        break;
    }
  }
}

namespace {

// std::nearbyint for |x| < 2^22, ties to even, as two adds: on the baseline
// x86-64 target (no SSE4.1 roundss) nearbyintf is a libm call that saves and
// restores the FP environment, which made int4's scale search ~20 ns a
// weight.
inline float round_small(float x) {
  constexpr float kMagic = 0x1.8p23f;
  return (x + kMagic) - kMagic;
}

}  // namespace

void quantize_int4_rows(const float* w, std::size_t ldw, int rows, int cols, int8_t* levels,
                        std::size_t ld_levels, float* scales, std::size_t ld_scales) {
  // The group's largest weight m goes to level -c (the scale takes m's
  // opposite sign), so that side of the group spans [-8, 0] in steps of
  // |m| / 8 at c = 8 rather than |m| / 7; c = 7 is plain rounding, the same
  // levels as a positive scale |m| / 7 mirrored, so the pick never errs more.
  constexpr float kCandidates[] = {8.0f, 7.5f, 7.0f, 6.5f};
  for (int o = 0; o < rows; ++o) {
    const float* row = w + o * ldw;
    int8_t* out = levels + o * ld_levels;
    for (int g = 0; g * kInt4Group < cols; ++g) {
      const int i0 = g * kInt4Group, i1 = std::min(cols, i0 + kInt4Group);
      float m = 0.0f;
      for (int i = i0; i < i1; ++i)
        if (std::fabs(row[i]) > std::fabs(m)) m = row[i];
      const float top = std::fabs(m);
      if (!(top / 7.0f <= 65504.0f * kInt8ScaleUnit))
        throw Error("int4 weights: a weight of magnitude " + std::to_string(top) +
                    " is past what int4 levels with f16 scales hold (447); use int8 or bf16 "
                    "weights");
      // Each candidate's levels by one reciprocal multiply per weight and
      // round_small (the search is most of a model's load time with int4
      // weights).
      float best_scale = 0.0f, best_err = std::numeric_limits<float>::infinity();
      for (float c : kCandidates) {
        const float mag = f16_to_f32(f16_scale_at_least(top / c / kInt8ScaleUnit)) * kInt8ScaleUnit;
        if (!(mag > 0.0f)) continue;
        const float scale = m > 0 ? -mag : mag, inv = 1.0f / scale;
        float err = 0.0f;
        for (int i = i0; i < i1; ++i) {
          const float q = std::clamp(round_small(row[i] * inv), -8.0f, 7.0f);
          err += (row[i] - q * scale) * (row[i] - q * scale);
        }
        if (err < best_err) best_err = err, best_scale = scale;
      }
      scales[o * ld_scales + g] = best_scale;
      const float inv = best_scale != 0.0f ? 1.0f / best_scale : 0.0f;
      for (int i = i0; i < i1; ++i)
        out[i] = static_cast<int8_t>(std::clamp(round_small(row[i] * inv), -8.0f, 7.0f));
    }
  }
}

void quantize_int8_rows(const float* w, std::size_t ldw, int rows, int cols, int8_t* levels,
                        std::size_t ld_levels, float* scales, std::size_t ld_scales) {
  for (int o = 0; o < rows; ++o) {
    const float* row = w + o * ldw;
    for (int g = 0; g * kWeightGroup < cols; ++g) {
      const int i0 = g * kWeightGroup, i1 = std::min(cols, i0 + kWeightGroup);
      float top = 0.0f;
      for (int i = i0; i < i1; ++i) top = std::max(top, std::fabs(row[i]));
      const float step = top / 127.0f;
      if (!(step <= 65504.0f * kInt8ScaleUnit))
        throw Error("int8 weights: a weight of magnitude " + std::to_string(top) +
                    " is past what int8 levels with f16 scales hold (8,125); use bf16 weights");
      const float scale = f16_to_f32(f16_scale_at_least(step / kInt8ScaleUnit)) * kInt8ScaleUnit;
      scales[o * ld_scales + g] = scale;
      for (int i = i0; i < i1; ++i) {
        const float q = scale > 0.0f ? std::nearbyint(row[i] / scale) : 0.0f;
        levels[o * ld_levels + i] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
      }
    }
  }
}

namespace {

// What both packings share: blocks and scales zeroed (padding included), then
// each element's level placed by `put(o, i, level)` and each group's scale
// at its slot, as f16 in units of kInt8ScaleUnit.
template <class Put>
void pack_rows(const WeightRows& w, std::size_t level_bytes, int group, int groups,
               const int8_t* levels, std::size_t ld_levels, const float* scales,
               std::size_t ld_scales, int rows, int cols, uint16_t* packed_scales, Put put) {
  const int blocks = int8_blocks(rows);
  std::memset(const_cast<void*>(w.data), 0, blocks * level_bytes);
  std::memset(packed_scales, 0, sizeof(uint16_t) * blocks * groups * kInt8BlockRows);
  for (int o = 0; o < rows; ++o) {
    for (int i = 0; i < cols; ++i) put(o, i, levels[o * ld_levels + i]);
    for (int g = 0; g * group < cols; ++g)
      packed_scales[(o / kInt8BlockRows) * w.ld_scales + g * kInt8BlockRows + o % kInt8BlockRows] =
          f32_to_f16(scales[o * ld_scales + g] / kInt8ScaleUnit);
  }
}

}  // namespace

void pack_int8_rows(const int8_t* levels, std::size_t ld_levels, const float* scales,
                    std::size_t ld_scales, int rows, int cols, int8_t* packed,
                    uint16_t* packed_scales) {
  const int groups = weight_groups(cols);
  const WeightRows w{WeightType::Int8, packed, int8_block_bytes(cols), packed_scales,
                     static_cast<std::size_t>(groups) * kInt8BlockRows};
  pack_rows(w, int8_block_bytes(cols), kWeightGroup, groups, levels, ld_levels, scales, ld_scales,
            rows, cols, packed_scales,
            [&](int o, int i, int8_t level) { packed[int8_level_offset(w, o, i)] = level; });
}

void pack_int4_rows(const int8_t* levels, std::size_t ld_levels, const float* scales,
                    std::size_t ld_scales, int rows, int cols, uint8_t* packed,
                    uint16_t* packed_scales) {
  const int groups = int4_groups(cols);
  const WeightRows w{WeightType::Int4, packed, int4_block_bytes(cols), packed_scales,
                     static_cast<std::size_t>(groups) * kInt8BlockRows};
  pack_rows(w, int4_block_bytes(cols), kInt4Group, groups, levels, ld_levels, scales, ld_scales,
            rows, cols, packed_scales, [&](int o, int i, int8_t level) {
              const auto nibble = static_cast<uint8_t>(level & 15);
              packed[int4_level_byte(w, o, i)] |= int4_nibble(i) == 0 ? nibble : nibble << 4;
            });
}

}  // namespace thinkeys

// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/weight_tiles.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
// clang-format on

#include "kernels/weight_tiles.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "format/row_codec.h"
#include "util/error.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// f32 -> bf16 bits, nearest even, lane-wise (finite values): adds 0x7FFF
// plus the kept lowest bit before dropping the low 16 bits.
template <class DU, class VU>
HWY_INLINE VU RoundToBf16Bits(DU du, VU bits) {
  const auto round = hn::Set(du, 0x7FFFu), one = hn::Set(du, 1u);
  return hn::ShiftRight<16>(hn::Add(bits, hn::Add(round, hn::And(hn::ShiftRight<16>(bits), one))));
}

void F32ToBf16(const float* x, std::size_t n, uint16_t* out) {
  const DF df;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<uint16_t, DF> d16;
  const std::size_t N = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto r = RoundToBf16Bits(du, hn::BitCast(du, hn::LoadU(df, x + i)));
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, r)), d16, out + i);
  }
  for (; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

// Rows [row_begin, row_end) of a packed int8 or int4 matrix as a transposed
// bf16 tile. A 32-byte unit holds 16 rows x 2 columns (int8) or 16 rows x 4
// (int4): widened to int16, its even lanes are one column of the block's 16
// rows and its odd lanes the next (for int4, the low nibbles those of the
// first column pair and the high ones the second), so splitting them is
// shifts, and the 16 rows' scales are one load.
template <WeightType kType>
void PackedRowsToBf16Transposed(const WeightRows& w, int cols, int row_begin, int row_end,
                                uint16_t* out, std::size_t ldo) {
  constexpr bool kInt4 = kType == WeightType::Int4;
#if HWY_TARGET == HWY_SCALAR  // one-lane vectors cannot hold a column pair
  for (int o = row_begin; o < row_end; ++o)
    for (int i = 0; i < cols; ++i)
      out[i * ldo + (o - row_begin)] =
          f32_to_bf16(kInt4 ? int4_value(w, o, i) : int8_value(w, o, i));
#else
  constexpr int kGroup = kInt4 ? kInt4Group : kWeightGroup, kUnitCols = kInt4 ? 4 : 2;
  constexpr int kGroupBytes = kGroup / kUnitCols * 32;
  const DF df;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<uint16_t, DF> d16;
  const hn::Repartition<int16_t, DF> dw;  // two levels per f32 lane
  const hn::Rebind<hwy::float16_t, DF> dh;
  const hn::Rebind<int8_t, decltype(dw)> d8;
  const int N = static_cast<int>(hn::Lanes(df));
  HWY_ALIGN uint16_t part[kUnitCols][hn::MaxLanes(DF())];
  for (int b = row_begin / kInt8BlockRows; b * kInt8BlockRows < row_end; ++b) {
    const int8_t* block = static_cast<const int8_t*>(w.data) + b * w.ld;
    const uint16_t* scales = w.scales + b * w.ld_scales;
    for (int h = 0; h < kInt8BlockRows; h += N) {
      const int o0 = b * kInt8BlockRows + h;  // first row of these lanes
      const int n = std::min(N, row_end - o0);
      if (n <= 0) break;
      uint16_t* dst = out + (o0 - row_begin);
      hn::Vec<DF> s = hn::Zero(df);
      for (int i = 0; i < cols; i += kUnitCols) {
        const int g = i / kGroup;
        // A group's scales are widened once, at its first unit.
        if (i % kGroup == 0)
          s = hn::Mul(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(
                                                          scales + g * kInt8BlockRows + h))),
                      hn::Set(df, kInt8ScaleUnit));
        const auto raw = hn::PromoteTo(
            dw, hn::LoadU(d8, block + g * kGroupBytes + (i % kGroup) / kUnitCols * 32 + 2 * h));
        hn::Vec<decltype(di)> pairs[kUnitCols / 2];
        if constexpr (kInt4) {
          pairs[0] = hn::BitCast(di, hn::ShiftRight<12>(hn::ShiftLeft<12>(raw)));
          pairs[1] = hn::BitCast(di, hn::ShiftRight<4>(raw));
        } else {
          pairs[0] = hn::BitCast(di, raw);
        }
        for (int k = 0; k < kUnitCols && i + k < cols; ++k) {
          const auto v = pairs[k / 2];
          const auto level =
              k % 2 == 0 ? hn::ShiftRight<16>(hn::ShiftLeft<16>(v)) : hn::ShiftRight<16>(v);
          const auto f = hn::Mul(hn::ConvertTo(df, level), s);
          const auto bits =
              hn::DemoteTo(d16, hn::BitCast(di, RoundToBf16Bits(du, hn::BitCast(du, f))));
          uint16_t* row = dst + (i + k) * ldo;
          if (n == N) {
            hn::StoreU(bits, d16, row);
          } else {
            hn::Store(bits, d16, part[k]);
            std::copy(part[k], part[k] + n, row);
          }
        }
      }
    }
  }
#endif
}

void PackedRowsToBf16(const WeightRows& w, int cols, int row_begin, int row_end, uint16_t* out,
                      std::size_t ldo) {
  if (w.type == WeightType::Int4)
    return PackedRowsToBf16Transposed<WeightType::Int4>(w, cols, row_begin, row_end, out, ldo);
  PackedRowsToBf16Transposed<WeightType::Int8>(w, cols, row_begin, row_end, out, ldo);
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(PackedRowsToBf16);
HWY_EXPORT(F32ToBf16);

void f32_to_bf16_bits(const float* x, std::size_t n, uint16_t* out) {
  HWY_DYNAMIC_DISPATCH(F32ToBf16)(x, n, out);
}

void weight_rows_to_bf16(const WeightRows& w, int cols, int row_begin, int row_end, uint16_t* out) {
  if (w.type != WeightType::BF16)
    throw Error(std::string("weight_rows_to_bf16: ") + weight_type_name(w.type) +
                " weights are not copied as bf16 rows");
  for (int o = row_begin; o < row_end; ++o, out += cols)
    std::memcpy(out, static_cast<const uint16_t*>(w.data) + static_cast<std::size_t>(o) * w.ld,
                cols * sizeof(uint16_t));
}

void packed_rows_to_bf16_transposed(const WeightRows& w, int cols, int row_begin, int row_end,
                                    uint16_t* out, std::size_t ldo) {
  if (!packed_weights(w.type) || row_begin % kInt8BlockRows != 0)
    throw Error("packed_rows_to_bf16_transposed: packed int8 or int4 rows from a multiple of 16");
  if (row_end <= row_begin || cols <= 0) return;
  HWY_DYNAMIC_DISPATCH(PackedRowsToBf16)(w, cols, row_begin, row_end, out, ldo);
}

}  // namespace thinkeys
#endif  // HWY_ONCE

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

// Row o of a packed int8 matrix: each group's levels are gathered from its
// 32 column pairs (two bytes each, 32 bytes apart) and then converted a
// vector at a time.
void Int8RowToBf16(const WeightRows& w, int o, int cols, uint16_t* out) {
  const DF df;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<uint16_t, DF> d16;
  const int N = static_cast<int>(hn::Lanes(df));
  HWY_ALIGN int8_t levels[kWeightGroup];
  for (int g0 = 0; g0 < cols; g0 += kWeightGroup) {
    const int g1 = std::min(cols, g0 + kWeightGroup);
    const int8_t* pairs = static_cast<const int8_t*>(w.data) + int8_level_offset(w, o, g0);
    for (int p = 0; p < (g1 - g0 + 1) / 2; ++p) std::memcpy(levels + 2 * p, pairs + 32 * p, 2);
    const float s = w.scales[int8_scale_offset(w, o, g0)];
    const auto vs = hn::Set(df, s);
    int i = 0;
    for (; g0 + i + N <= g1; i += N) {
      const auto f = hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, levels + i))), vs);
      const auto r = RoundToBf16Bits(du, hn::BitCast(du, f));
      hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, r)), d16, out + g0 + i);
    }
    for (; g0 + i < g1; ++i) out[g0 + i] = f32_to_bf16(static_cast<float>(levels[i]) * s);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(Int8RowToBf16);
HWY_EXPORT(F32ToBf16);

void f32_to_bf16_bits(const float* x, std::size_t n, uint16_t* out) {
  HWY_DYNAMIC_DISPATCH(F32ToBf16)(x, n, out);
}

void weight_rows_to_bf16(const WeightRows& w, int cols, int row_begin, int row_end, uint16_t* out) {
  for (int o = row_begin; o < row_end; ++o, out += cols) {
    const std::size_t base = static_cast<std::size_t>(o) * w.ld;
    switch (w.type) {
      case WeightType::BF16:
        std::memcpy(out, static_cast<const uint16_t*>(w.data) + base, cols * sizeof(uint16_t));
        break;
      case WeightType::Int8:
        HWY_DYNAMIC_DISPATCH(Int8RowToBf16)(w, o, cols, out);
        break;
      default:
        throw Error(std::string("weight_rows_to_bf16: ") + weight_type_name(w.type) +
                    " weights are not converted to bf16");
    }
  }
}

}  // namespace thinkeys
#endif  // HWY_ONCE

// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/packed_gemm.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
// clang-format on

#include "kernels/packed_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/weight_prefetch.h"
#include "util/error.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
// At most 512 bits: a block's 16 rows are one vector of int32 or several.
using D16 = hn::CappedTag<int16_t, 2 * kInt8BlockRows>;
using D32 = hn::Repartition<int32_t, D16>;
using DF32 = hn::Repartition<float, D16>;

// Input rows per tile: each widened weight vector serves every row of the
// tile, and a row holds one f32 and one to four int32 accumulators in
// registers (AVX-512 has 32, other targets 16).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kMaxTileRows = 8;
#else
constexpr int kMaxTileRows = 4;
#endif

// sum + a[2j] * b[2j] + a[2j + 1] * b[2j + 1] in int32 lane j. With AVX-512
// VNNI one instruction (vpdpwssd), written as asm because Highway 1.0.3 has
// no VNNI op and its AVX3_DL target cannot be used: that target's compiler
// flags name "avxvnni" (the VEX form, which Zen 4 lacks), so GCC's own
// vectorized dot products there fault with an illegal instruction. Other x86
// targets take pmaddwd through ReorderWidenMulAccumulate, whose lane order
// Highway leaves unspecified but is this pairwise one on x86 (and on EMU128,
// where it adds its even and odd halves); elsewhere even and odd lanes are
// split by shifts so that the lane order is certain.
template <bool kVnni>
HWY_INLINE hn::Vec<D32> MulAddPairs(D32 d32, hn::Vec<D16> a, hn::Vec<D16> b, hn::Vec<D32> sum) {
#if HWY_TARGET == HWY_AVX3
  if constexpr (kVnni) {
    __m512i acc = sum.raw;
    asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a.raw), "v"(b.raw));
    return hn::Vec<D32>{acc};
  }
#endif
#if HWY_ARCH_X86 || HWY_TARGET == HWY_EMU128
  auto odd = hn::Zero(d32);
  return hn::Add(hn::ReorderWidenMulAccumulate(d32, a, b, sum, odd), odd);
#else
  const auto ai = hn::BitCast(d32, a), bi = hn::BitCast(d32, b);
  const auto even =
      hn::Mul(hn::ShiftRight<16>(hn::ShiftLeft<16>(ai)), hn::ShiftRight<16>(hn::ShiftLeft<16>(bi)));
  return hn::Add(sum, hn::Add(even, hn::Mul(hn::ShiftRight<16>(ai), hn::ShiftRight<16>(bi))));
#endif
}

void QuantizeRows(const float* x, std::size_t ldx, int rows, int in, int16_t* levels,
                  std::size_t ld, float* scales) {
  const DF df;
  const hn::Rebind<int16_t, DF> d16;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    int16_t* q = levels + r * ld;
    auto top = hn::Zero(df);
    int i = 0;
    for (; i + N <= in; i += N) top = hn::Max(top, hn::Abs(hn::LoadU(df, xr + i)));
    float m = in >= N ? hn::GetLane(hn::MaxOfLanes(df, top)) : 0.0f;
    for (; i < in; ++i) m = std::max(m, std::fabs(xr[i]));
    scales[r] = m / 32767.0f;
    const float inv = m > 0.0f ? 32767.0f / m : 0.0f;
    const auto vinv = hn::Set(df, inv);
    i = 0;
    for (; i + N <= in; i += N)
      hn::StoreU(hn::DemoteTo(d16, hn::NearestInt(hn::Mul(hn::LoadU(df, xr + i), vinv))), d16,
                 q + i);
    for (; i < in; ++i)
      q[i] = static_cast<int16_t>(std::lrintf(std::clamp(xr[i] * inv, -32767.0f, 32767.0f)));
    std::fill(q + in, q + int8_padded_cols(in), int16_t{0});
  }
}

// The two packings (kernels/weight_rows.h) as the kernel walks them: a group
// of kGroup columns in kGroup / kUnitCols units of 32 bytes, each unit one
// (int8) or two (int4) column pairs of the block's 16 rows.
template <WeightType kType>
struct Packing {
  static constexpr bool kInt4 = kType == WeightType::Int4;
  static constexpr int kGroup = kInt4 ? kInt4Group : kWeightGroup;
  static constexpr int kUnitCols = kInt4 ? 4 : 2;
  static constexpr int kUnits = kGroup / kUnitCols;
  static constexpr int kGroupBytes = kUnits * 32;
};

// One block of 16 weight rows by NR input rows, output lanes [o_lo, o_hi)
// of the block stored. The block's rows go kLanes at a time (one pass on
// AVX-512, two on AVX2); a unit's 32 bytes are one widened vector, split
// into two by shifts for int4, and each column pair's activations are
// broadcast from each row. NR < 4 rows keep 4 / NR int32 chains per row so
// that the multiply-adds do not wait on each other.
template <WeightType kType, int NR, bool kVnni>
HWY_INLINE void Block(const WeightRows& w, int block, int groups, const Int16Rows& x,
                      const float* bias, float* y, std::size_t ldy, int o_lo, int o_hi,
                      const PrefetchTuning& tuning) {
  using P = Packing<kType>;
  const D16 d16;
  const D32 d32;
  const DF32 df;
  const hn::Rebind<int8_t, D16> d8;
  const hn::Rebind<hwy::float16_t, DF32> dh;
  constexpr int kChains = NR >= 4 ? 1 : 4 / NR;
  // Units per chain step: int4 units feed two chains each.
  constexpr int kUnitStep = P::kInt4 ? (kChains + 1) / 2 : kChains;
  const int kLanes = static_cast<int>(hn::Lanes(d32));
  const std::size_t ahead = tuning.int8_bytes;
  const bool into_l1 = tuning.int8_into_l1;
  const int8_t* wb = static_cast<const int8_t*>(w.data) + block * w.ld;
  const uint16_t* sb = w.scales + block * w.ld_scales;
  const int o0 = block * kInt8BlockRows;
  auto mul_add = [&](hn::Vec<D16> wv, const int16_t* xr, hn::Vec<D32> sum) {
    int32_t pair;
    std::memcpy(&pair, xr, sizeof pair);
    return MulAddPairs<kVnni>(d32, wv, hn::BitCast(d16, hn::Set(d32, pair)), sum);
  };
  for (int h = 0; h < kInt8BlockRows; h += kLanes) {
    if (h + kLanes <= o_lo || h >= o_hi) continue;
    hn::Vec<DF32> acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = hn::Zero(df);
    for (int g = 0; g < groups; ++g) {
      const int8_t* wg = wb + g * P::kGroupBytes;
      // The blocks of a range follow each other, so the lines `ahead` bytes
      // on are the ones read next; a group's 16 scales are 32 bytes against
      // its kGroupBytes of levels.
      if (h == 0)
        __builtin_prefetch(sb + g * kInt8BlockRows + ahead * kInt8BlockRows / P::kGroupBytes, 0, 2);
      const int16_t* xg = x.levels + g * P::kGroup;
      hn::Vec<D32> iacc[NR][kChains];
      for (int r = 0; r < NR; ++r)
        for (int c = 0; c < kChains; ++c) iacc[r][c] = hn::Zero(d32);
      for (int u = 0; u < P::kUnits; u += kUnitStep) {
        // One request per line as the line before it is read, not the
        // group's at its start (kernels/weight_prefetch.h); into L1 or L2
        // by CPU (kernels/prefetch_tuning.h).
        if (h == 0 && u % 2 == 0)
          for (int b = 0; b < std::max(64, kUnitStep * 32); b += 64) {
            if (into_l1)
              __builtin_prefetch(wg + u * 32 + b + ahead, 0, 3);
            else
              __builtin_prefetch(wg + u * 32 + b + ahead, 0, 2);
          }
        for (int c = 0; c < kUnitStep; ++c) {
          const auto raw = hn::PromoteTo(d16, hn::LoadU(d8, wg + (u + c) * 32 + h * 2));
          const int col = (u + c) * P::kUnitCols;
          if constexpr (P::kInt4) {
            // Low nibbles sign-extended by two shifts, high ones by one (the
            // byte was sign-extended by the widening).
            const auto lo = hn::ShiftRight<12>(hn::ShiftLeft<12>(raw));
            const auto hi = hn::ShiftRight<4>(raw);
            for (int r = 0; r < NR; ++r) {
              auto& a = iacc[r][(2 * c) % kChains];
              a = mul_add(lo, xg + r * x.ld + col, a);
              auto& b = iacc[r][(2 * c + 1) % kChains];
              b = mul_add(hi, xg + r * x.ld + col + 2, b);
            }
          } else {
            for (int r = 0; r < NR; ++r) iacc[r][c] = mul_add(raw, xg + r * x.ld + col, iacc[r][c]);
          }
        }
      }
      const auto s = hn::PromoteTo(
          df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(sb + g * kInt8BlockRows + h)));
      for (int r = 0; r < NR; ++r) {
        auto t = iacc[r][0];
        for (int c = 1; c < kChains; ++c) t = hn::Add(t, iacc[r][c]);
        acc[r] = hn::MulAdd(hn::ConvertTo(df, t), s, acc[r]);
      }
    }
    const bool whole = o_lo <= h && h + kLanes <= o_hi;
    for (int r = 0; r < NR; ++r) {
      const auto v = hn::Mul(acc[r], hn::Set(df, x.scales[r] * kInt8ScaleUnit));
      float* yr = y + r * ldy + o0;
      if (whole) {
        hn::StoreU(bias ? hn::Add(v, hn::LoadU(df, bias + o0 + h)) : v, df, yr + h);
        continue;
      }
      HWY_ALIGN float lanes[hn::MaxLanes(DF32())];
      hn::Store(v, df, lanes);
      for (int j = std::max(h, o_lo); j < std::min(h + kLanes, o_hi); ++j)
        yr[j] = lanes[j - h] + (bias ? bias[o0 + j] : 0.0f);
    }
  }
}

#if HWY_TARGET == HWY_SCALAR
// One-lane vectors cannot hold a column pair: plain loops.
template <WeightType kType, bool kVnni>
void PackedGemmWith(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                    float* y, std::size_t ldy, int o_begin, int o_end) {
  constexpr int kGroup = Packing<kType>::kGroup;
  for (int r = 0; r < rows; ++r)
    for (int o = o_begin; o < o_end; ++o) {
      float sum = 0.0f;
      for (int i0 = 0; i0 < in; i0 += kGroup) {
        int32_t t = 0;
        float scale;
        for (int i = i0; i < std::min(in, i0 + kGroup); ++i) {
          const int level = kType == WeightType::Int4
                                ? int4_level(w, o, i)
                                : static_cast<const int8_t*>(w.data)[int8_level_offset(w, o, i)];
          t += level * x.levels[r * x.ld + i];
        }
        if constexpr (kType == WeightType::Int4)
          scale = f16_to_f32(w.scales[int4_scale_offset(w, o, i0)]);
        else
          scale = f16_to_f32(w.scales[int8_scale_offset(w, o, i0)]);
        sum += static_cast<float>(t) * scale;
      }
      y[r * ldy + o] = sum * (x.scales[r] * kInt8ScaleUnit) + (bias ? bias[o] : 0.0f);
    }
}
#else
template <WeightType kType, bool kVnni>
void PackedGemmWith(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                    float* y, std::size_t ldy, int o_begin, int o_end) {
  using P = Packing<kType>;
  const int groups = (in + P::kGroup - 1) / P::kGroup;
  const int first = o_begin / kInt8BlockRows, last = (o_end - 1) / kInt8BlockRows;
  const PrefetchTuning& tuning = prefetch_tuning();
  // The first lines of the range (PrefetchTuning::int8_start_bytes): the
  // steady-state prefetch of the range before (another thread's, or none)
  // does not reach them in time.
  const std::size_t start =
      std::min<std::size_t>(tuning.int8_start_bytes, (last - first + 1) * w.ld);
  prefetch_rows(static_cast<const int8_t*>(w.data) + first * w.ld, 1, start, start);
  prefetch_rows(w.scales + first * w.ld_scales, 1, start * 32 / P::kGroupBytes + 64, start);
  for (int b = first; b <= last; ++b) {
    const int lo = std::max(o_begin - b * kInt8BlockRows, 0);
    const int hi = std::min(o_end - b * kInt8BlockRows, kInt8BlockRows);
    int r = 0;
    auto tile = [&](auto nr) {
      constexpr int n = decltype(nr)::value;
      const Int16Rows xr{x.levels + r * x.ld, x.ld, x.scales + r};
      Block<kType, n, kVnni>(w, b, groups, xr, bias, y + r * ldy, ldy, lo, hi, tuning);
      r += n;
    };
    while (r + kMaxTileRows <= rows) tile(std::integral_constant<int, kMaxTileRows>());
    if constexpr (kMaxTileRows > 4)
      if (r + 4 <= rows) tile(std::integral_constant<int, 4>());
    if (r + 2 <= rows) tile(std::integral_constant<int, 2>());
    if (r < rows) tile(std::integral_constant<int, 1>());
  }
}
#endif  // HWY_TARGET == HWY_SCALAR

template <WeightType kType>
void PackedGemmTyped(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                     float* y, std::size_t ldy, int o_begin, int o_end) {
#if HWY_TARGET == HWY_AVX3
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (vnni) return PackedGemmWith<kType, true>(w, in, x, rows, bias, y, ldy, o_begin, o_end);
#endif
  PackedGemmWith<kType, false>(w, in, x, rows, bias, y, ldy, o_begin, o_end);
}

void PackedGemm(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                float* y, std::size_t ldy, int o_begin, int o_end) {
  if (w.type == WeightType::Int4)
    return PackedGemmTyped<WeightType::Int4>(w, in, x, rows, bias, y, ldy, o_begin, o_end);
  PackedGemmTyped<WeightType::Int8>(w, in, x, rows, bias, y, ldy, o_begin, o_end);
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(QuantizeRows);
HWY_EXPORT(PackedGemm);

void quantize_rows_int16(const float* x, std::size_t ldx, int rows, int in, int16_t* levels,
                         std::size_t ld, float* scales) {
  if (rows <= 0) return;
  HWY_DYNAMIC_DISPATCH(QuantizeRows)(x, ldx, rows, in, levels, ld, scales);
}

Int16Rows Int16RowBuffer::quantize(const float* x, std::size_t ldx, int rows, int in) {
  const std::size_t ld = int8_padded_cols(in);
  if (levels_.size() < rows * ld) levels_.resize(rows * ld);
  if (scales_.size() < static_cast<std::size_t>(rows)) scales_.resize(rows);
  quantize_rows_int16(x, ldx, rows, in, levels_.data(), ld, scales_.data());
  return {levels_.data(), ld, scales_.data()};
}

void small_gemm_packed(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                       float* y, std::size_t ldy, int o_begin, int o_end) {
  if (rows <= 0 || o_end <= o_begin) return;
  if (!packed_weights(w.type))
    throw Error(std::string("small_gemm_packed: ") + weight_type_name(w.type) +
                " weights are not packed integers");
  HWY_DYNAMIC_DISPATCH(PackedGemm)(w, in, x, rows, bias, y, ldy, o_begin, o_end);
}

}  // namespace thinkeys
#endif  // HWY_ONCE

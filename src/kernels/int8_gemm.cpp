// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/int8_gemm.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
// clang-format on

#include "kernels/int8_gemm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/weight_prefetch.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using D16 = hn::ScalableTag<int16_t>;
using D32 = hn::Repartition<int32_t, D16>;
using DF32 = hn::Repartition<float, D16>;

// Accumulators per (weight row, input row): one int32 for the current group
// and one f32 for the row, all in registers. On AVX-512's 32 registers a
// tile is 2 weight rows x 2 input rows for one or two rows, 2 x 4 for more
// (every widened weight vector then serves 4 rows); 16-register targets take
// 2 x 1 and 2 x 2. Two weight rows rather than four at batch 1: a tile reads
// its rows' cache lines in turn, so four 768-byte rows made four short
// interleaved streams over 3 KiB, two make the walk closer to one sequential
// stream, and the int8 decode step ran 4-9% faster within the same quiet runs
// (int8 / bf16 at 1K 0.56-0.61 against 0.59-0.71, docs/results/decode.md).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kFewRows = 2, kManyRows = 4;
#else
constexpr int kFewRows = 1, kManyRows = 2;
#endif

// sum + pairwise products of a and b, as ReorderWidenMulAccumulate (sum1
// only used where the target has no pairwise multiply-add). With AVX-512
// VNNI one instruction (vpdpwssd) instead of two, which cuts the integer work
// of a batch-8 step by a quarter. Written as asm because Highway 1.0.3 has no
// VNNI op and its AVX3_DL target cannot be used: that target's compiler
// flags name "avxvnni" (the VEX form, which Zen 4 lacks), so GCC's own
// vectorized dot products there fault with an illegal instruction.
template <bool kVnni>
HWY_INLINE hn::Vec<D32> MulAddPairs(D32 d32, hn::Vec<D16> a, hn::Vec<D16> b, hn::Vec<D32> sum,
                                    hn::Vec<D32>& sum1) {
#if HWY_TARGET == HWY_AVX3
  if constexpr (kVnni) {
    __m512i acc = sum.raw;
    asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a.raw), "v"(b.raw));
    return hn::Vec<D32>{acc};
  }
#endif
  return hn::ReorderWidenMulAccumulate(d32, a, b, sum, sum1);
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
  }
}

// One tile of NO weight rows by NR input rows; every weight vector loaded is
// used by all NR rows. Whole groups run with compile-time trip counts so that
// the accumulator arrays stay in registers; a last partial group is summed in
// scalar code.
template <int NO, int NR, bool kVnni>
HWY_INLINE void Tile(const WeightRows& w, int o0, int in, const Int16Rows& x, const float* bias,
                     float* y, std::size_t ldy) {
  const D16 d16;
  const D32 d32;
  const DF32 df;
  const hn::Rebind<int8_t, D16> d8;
  constexpr int N = static_cast<int>(hn::MaxLanes(D16()));
  static_assert(kWeightGroup % N == 0);
  const int8_t* wp[NO];
  const float* sp[NO];
  for (int o = 0; o < NO; ++o) {
    wp[o] = static_cast<const int8_t*>(w.data) + (o0 + o) * w.ld;
    sp[o] = w.scales + (o0 + o) * w.ld_scales;
  }
  hn::Vec<DF32> acc[NO][NR];
  for (int o = 0; o < NO; ++o)
    for (int r = 0; r < NR; ++r) acc[o][r] = hn::Zero(df);
  const std::size_t ahead_rows = weight_prefetch_rows(NO, w.ld), ahead = ahead_rows * w.ld;
  // The scales of the rows whose levels are fetched below: a row's scales
  // (4 bytes per 64 levels) are a stream of their own, and waiting for them
  // cost about a tenth of the kernel's time before they were prefetched.
  for (int o = 0; o < NO; ++o) {
    const float* s = sp[o] + ahead_rows * w.ld_scales;
    __builtin_prefetch(s, 0, 2);
    __builtin_prefetch(s + w.ld_scales - 1, 0, 2);
  }
  const int full = in / kWeightGroup;
  for (int g = 0; g < full; ++g) {
    const int i0 = g * kWeightGroup;
    // A group is one cache line of a row: fetch the same line `ahead` rows
    // on (kernels/weight_prefetch.h).
    for (int o = 0; o < NO; ++o) __builtin_prefetch(wp[o] + i0 + ahead, 0, 2);
    hn::Vec<D32> iacc[NO][NR], iacc1[NO][NR];
    for (int o = 0; o < NO; ++o)
      for (int r = 0; r < NR; ++r) iacc[o][r] = iacc1[o][r] = hn::Zero(d32);
    for (int k = 0; k < kWeightGroup / N; ++k) {
      const int i = i0 + k * N;
      hn::Vec<D16> wv[NO];
      for (int o = 0; o < NO; ++o) wv[o] = hn::PromoteTo(d16, hn::LoadU(d8, wp[o] + i));
      for (int r = 0; r < NR; ++r) {
        const auto xv = hn::LoadU(d16, x.levels + r * x.ld + i);
        for (int o = 0; o < NO; ++o)
          iacc[o][r] = MulAddPairs<kVnni>(d32, wv[o], xv, iacc[o][r], iacc1[o][r]);
      }
    }
    for (int o = 0; o < NO; ++o) {
      const auto s = hn::Set(df, sp[o][g]);
      // The second sum stays zero on targets with a pairwise multiply-add.
      for (int r = 0; r < NR; ++r)
        acc[o][r] = hn::MulAdd(hn::ConvertTo(df, hn::Add(iacc[o][r], iacc1[o][r])), s, acc[o][r]);
    }
  }
  for (int o = 0; o < NO; ++o)
    for (int r = 0; r < NR; ++r) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[o][r]));
      if (full * kWeightGroup < in) {
        int32_t t = 0;
        for (int j = full * kWeightGroup; j < in; ++j)
          t += int32_t{wp[o][j]} * x.levels[r * x.ld + j];
        s += static_cast<float>(t) * sp[o][full];
      }
      y[r * ldy + o0 + o] = s * x.scales[r] + (bias ? bias[o0 + o] : 0.0f);
    }
}

template <int NO, int NR, bool kVnni>
HWY_INLINE void Rows(const WeightRows& w, int o0, int in, const Int16Rows& x, int rows,
                     const float* bias, float* y, std::size_t ldy) {
  int r = 0;
  auto tile = [&](auto nr) {
    const Int16Rows xr{x.levels + r * x.ld, x.ld, x.scales + r};
    Tile<NO, decltype(nr)::value, kVnni>(w, o0, in, xr, bias, y + r * ldy, ldy);
    r += decltype(nr)::value;
  };
  while (r + NR <= rows) tile(std::integral_constant<int, NR>());
  if constexpr (NR > 2)
    if (r + 2 <= rows) tile(std::integral_constant<int, 2>());
  if (r < rows) tile(std::integral_constant<int, 1>());
}

template <int NO, int NR, bool kVnni>
void Outputs(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias, float* y,
             std::size_t ldy, int o_begin, int o_end) {
  prefetch_range_start(w, in, o_begin, o_end, NO);
  int o = o_begin;
  for (; o + NO <= o_end; o += NO) Rows<NO, NR, kVnni>(w, o, in, x, rows, bias, y, ldy);
  for (; o < o_end; ++o) Rows<1, NR, kVnni>(w, o, in, x, rows, bias, y, ldy);
}

template <bool kVnni>
void Int8GemmWith(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                  float* y, std::size_t ldy, int o_begin, int o_end) {
  if (rows >= kManyRows)
    Outputs<2, kManyRows, kVnni>(w, in, x, rows, bias, y, ldy, o_begin, o_end);
  else
    Outputs<2, kFewRows, kVnni>(w, in, x, rows, bias, y, ldy, o_begin, o_end);
}

void Int8Gemm(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
              float* y, std::size_t ldy, int o_begin, int o_end) {
#if HWY_TARGET == HWY_AVX3
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (vnni) return Int8GemmWith<true>(w, in, x, rows, bias, y, ldy, o_begin, o_end);
#endif
  Int8GemmWith<false>(w, in, x, rows, bias, y, ldy, o_begin, o_end);
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(QuantizeRows);
HWY_EXPORT(Int8Gemm);

void quantize_rows_int16(const float* x, std::size_t ldx, int rows, int in, int16_t* levels,
                         std::size_t ld, float* scales) {
  if (rows <= 0) return;
  HWY_DYNAMIC_DISPATCH(QuantizeRows)(x, ldx, rows, in, levels, ld, scales);
}

void small_gemm_int8(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                     float* y, std::size_t ldy, int o_begin, int o_end) {
  if (rows <= 0 || o_end <= o_begin) return;
  HWY_DYNAMIC_DISPATCH(Int8Gemm)(w, in, x, rows, bias, y, ldy, o_begin, o_end);
}

}  // namespace thinkeys
#endif  // HWY_ONCE

// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/small_gemm.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
// clang-format on

#include "kernels/small_gemm.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// NO weight rows x NR input rows of accumulators must stay in registers (a
// spilled accumulator turns every FMA into a store/reload chain): 4 x 4 on
// AVX-512's 32 vector registers, 4 x 2 on 16-register targets.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kTileRows = 4;
#else
constexpr int kTileRows = 2;
#endif
constexpr int kTileOut = 4;

// One tile: every loaded weight vector is used by all NR input rows, so the
// weights are read once per tile however many rows there are.
template <int NO, int NR>
HWY_INLINE void GemmTile(const float* w, std::size_t ldw, int in, const float* x, std::size_t ldx,
                         const float* bias, float* y, std::size_t ldy) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  hn::Vec<DF> acc[NO][NR];
  for (int o = 0; o < NO; ++o)
    for (int r = 0; r < NR; ++r) acc[o][r] = hn::Zero(df);
  int i = 0;
  for (; i + N <= in; i += N) {
    hn::Vec<DF> wv[NO];
    for (int o = 0; o < NO; ++o) wv[o] = hn::LoadU(df, w + o * ldw + i);
    for (int r = 0; r < NR; ++r) {
      const auto xv = hn::LoadU(df, x + r * ldx + i);
      for (int o = 0; o < NO; ++o) acc[o][r] = hn::MulAdd(wv[o], xv, acc[o][r]);
    }
  }
  for (int o = 0; o < NO; ++o)
    for (int r = 0; r < NR; ++r) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[o][r]));
      for (int j = i; j < in; ++j) s += w[o * ldw + j] * x[r * ldx + j];
      y[r * ldy + o] = s + (bias ? bias[o] : 0.0f);
    }
}

// All rows against NO weight rows, in groups of kTileRows and a remainder.
template <int NO>
HWY_INLINE void GemmRows(const float* w, std::size_t ldw, int in, const float* x, std::size_t ldx,
                         int rows, const float* bias, float* y, std::size_t ldy) {
  int r = 0;
  for (; r + kTileRows <= rows; r += kTileRows)
    GemmTile<NO, kTileRows>(w, ldw, in, x + r * ldx, ldx, bias, y + r * ldy, ldy);
  switch (rows - r) {
    case 3:
      if constexpr (kTileRows > 3)
        GemmTile<NO, 3>(w, ldw, in, x + r * ldx, ldx, bias, y + r * ldy, ldy);
      break;
    case 2:
      if constexpr (kTileRows > 2)
        GemmTile<NO, 2>(w, ldw, in, x + r * ldx, ldx, bias, y + r * ldy, ldy);
      break;
    case 1:
      GemmTile<NO, 1>(w, ldw, in, x + r * ldx, ldx, bias, y + r * ldy, ldy);
      break;
    default:
      break;
  }
}

void SmallGemm(const float* w, std::size_t ldw, int in, const float* x, std::size_t ldx, int rows,
               const float* bias, float* y, std::size_t ldy, int o_begin, int o_end) {
  int o = o_begin;
  for (; o + kTileOut <= o_end; o += kTileOut)
    GemmRows<kTileOut>(w + o * ldw, ldw, in, x, ldx, rows, bias ? bias + o : nullptr, y + o, ldy);
  for (; o < o_end; ++o)
    GemmRows<1>(w + o * ldw, ldw, in, x, ldx, rows, bias ? bias + o : nullptr, y + o, ldy);
}

const char* GemmTargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(SmallGemm);
HWY_EXPORT(GemmTargetName);

void small_gemm(const float* w, std::size_t ldw, int in, const float* x, std::size_t ldx, int rows,
                const float* bias, float* y, std::size_t ldy, int o_begin, int o_end) {
  if (rows <= 0 || o_end <= o_begin) return;
  HWY_DYNAMIC_DISPATCH(SmallGemm)(w, ldw, in, x, ldx, rows, bias, y, ldy, o_begin, o_end);
}

const char* small_gemm_target() { return HWY_DYNAMIC_DISPATCH(GemmTargetName)(); }

}  // namespace thinkeys
#endif  // HWY_ONCE

// What the score and accumulate tiles share: the register budget per
// target, the four-way lane reduction, query passes and the prefetch
// cursor's per-row pacing. Per-target Highway code for decode_attention.cpp.
#include <cstddef>
#include <type_traits>

#include "kernels/prefetch_cursor.h"

#if defined(THINKEYS_KERNELS_ATTENTION_TILES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_ATTENTION_TILES_INL_H_
#undef THINKEYS_KERNELS_ATTENTION_TILES_INL_H_
#else
#define THINKEYS_KERNELS_ATTENTION_TILES_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Register budget. Every accumulator below is a compile-time-sized array of
// vectors, so it stays in registers (a runtime-sized one is spilled to the
// stack and turns every FMA into a store/reload chain). AVX-512 has 32
// vector registers, the other x86 targets 16.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kPassQueries = 4;  // queries per pass in Scores: 4 x 4 accumulators
constexpr int kAccRegs = 16;     // value accumulators per pass in Accumulate
#else
constexpr int kPassQueries = 2;
constexpr int kAccRegs = 8;
#endif
// Tokens scored together: their four lane sums are reduced at once.
constexpr int kTokens = 4;

// Sums of the lanes of a, b, c, e into out[0..3]. Within every 128-bit block
// two interleave-add rounds transpose and add, then the blocks are folded
// together: 3 + log2(blocks) shuffle-adds instead of four full reductions.
HWY_INLINE void StoreSums4(hn::Vec<DF> a, hn::Vec<DF> b, hn::Vec<DF> c, hn::Vec<DF> e, float* out) {
  const DF df;
#if HWY_TARGET == HWY_SCALAR
  out[0] = hn::GetLane(a), out[1] = hn::GetLane(b), out[2] = hn::GetLane(c);
  out[3] = hn::GetLane(e);
  (void)df;
#else
  const hn::RepartitionToWide<hn::RebindToUnsigned<DF> > du64;
  // [a0+a2, b0+b2, a1+a3, b1+b3] per block, and likewise for c, e.
  const auto ab = hn::Add(hn::InterleaveLower(df, a, b), hn::InterleaveUpper(df, a, b));
  const auto ce = hn::Add(hn::InterleaveLower(df, c, e), hn::InterleaveUpper(df, c, e));
  const auto ab64 = hn::BitCast(du64, ab), ce64 = hn::BitCast(du64, ce);
  auto sum = hn::Add(hn::BitCast(df, hn::InterleaveLower(du64, ab64, ce64)),
                     hn::BitCast(df, hn::InterleaveUpper(du64, ab64, ce64)));
  if constexpr (hn::MaxLanes(df) > 8) {  // 512-bit: fold four blocks to two
    const hn::Half<DF> dh;
    const auto h = hn::Add(hn::LowerHalf(dh, sum), hn::UpperHalf(dh, sum));
    const hn::Half<decltype(dh)> dq;
    hn::StoreU(hn::Add(hn::LowerHalf(dq, h), hn::UpperHalf(dq, h)), dq, out);
  } else if constexpr (hn::MaxLanes(df) > 4) {  // 256-bit: two blocks to one
    const hn::Half<DF> dh;
    hn::StoreU(hn::Add(hn::LowerHalf(dh, sum), hn::UpperHalf(dh, sum)), dh, out);
  } else {
    hn::StoreU(sum, df, out);
  }
#endif
}

// What a loader passes to the cursor per row it consumes (none when null).
struct Ahead {
  PrefetchCursor<>* cursor = nullptr;
  std::size_t row_bytes = 0;
  HWY_INLINE void row() const {
    if (cursor) cursor->advance(row_bytes);
  }
};

// Calls fn(std::integral_constant<int, nq>(), g) for the passes that cover
// queries [g0, g1): passes of kWidest, then at most one each of 3 (one pass,
// not 2 + 1: 12 query heads over 4 KV heads), 2 and 1 narrower than kWidest.
template <int kWidest, class Fn>
HWY_INLINE void QueryPasses(int g0, int g1, Fn&& fn) {
  int g = g0;
  for (; g + kWidest <= g1; g += kWidest) fn(std::integral_constant<int, kWidest>(), g);
  if constexpr (kWidest > 3) {
    if (g + 3 <= g1) {
      fn(std::integral_constant<int, 3>(), g);
      g += 3;
    }
  }
  if constexpr (kWidest > 2) {
    if (g + 2 <= g1) {
      fn(std::integral_constant<int, 2>(), g);
      g += 2;
    }
  }
  if (g < g1) fn(std::integral_constant<int, 1>(), g);
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_ATTENTION_TILES_INL_H_

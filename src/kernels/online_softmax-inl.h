// The vector pieces of the online softmax over a block's scores: the
// maximum and exp(x - m) with its sum. Per-target Highway code for
// decode_attention.cpp.
#include <limits>

#if defined(THINKEYS_KERNELS_ONLINE_SOFTMAX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_ONLINE_SOFTMAX_INL_H_
#undef THINKEYS_KERNELS_ONLINE_SOFTMAX_INL_H_
#else
#define THINKEYS_KERNELS_ONLINE_SOFTMAX_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
#include "hwy/contrib/math/math-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

float Max(const float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  auto m = hn::Set(df, -std::numeric_limits<float>::infinity());
  for (int i = 0; i < n; i += N) m = hn::Max(m, hn::LoadU(df, x + i));
  return hn::GetLane(hn::MaxOfLanes(df, m));
}

// x = exp(x - m) in place; returns the sum. Padding holds -inf and becomes 0.
float ExpShiftSum(float m, float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto vm = hn::Set(df, m);
  auto sum = hn::Zero(df);
  for (int i = 0; i < n; i += N) {
    const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vm));
    hn::StoreU(e, df, x + i);
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(df, sum));
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_ONLINE_SOFTMAX_INL_H_

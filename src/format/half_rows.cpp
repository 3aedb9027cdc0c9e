// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "format/half_rows.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
// clang-format on

#include "format/half_rows.h"

#include <cstdint>
#include <cstring>

#include "format/row_codec.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void F32ToF16Row(const float* src, std::size_t n, std::byte* dst) {
  std::size_t i = 0;
  // x86 targets from AVX2 on convert with F16C (vcvtps2ph, nearest even);
  // elsewhere the scalar conversion keeps the rounding the same everywhere.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const std::size_t N = hn::Lanes(df);
  auto* out = reinterpret_cast<hwy::float16_t*>(dst);
  for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(dh, hn::LoadU(df, src + i)), dh, out + i);
#endif
  for (; i < n; ++i) {
    const uint16_t h = f32_to_f16(src[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(F32ToF16Row);

void f32_to_f16_row(const float* src, std::size_t n, std::byte* dst) {
  HWY_DYNAMIC_DISPATCH(F32ToF16Row)(src, n, dst);
}

}  // namespace thinkeys
#endif  // HWY_ONCE

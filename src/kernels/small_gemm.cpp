// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/small_gemm.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
// clang-format on

#include "kernels/small_gemm.h"

#include "format/row_codec.h"
#include "kernels/packed_gemm.h"
#include "kernels/weight_prefetch.h"
#include "util/error.h"

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

// Reads weights of one float dtype as f32 vectors and scalars (packed integer
// weights go to kernels/packed_gemm.h).
template <WeightType T>
struct Reader {
  const void* data;
  std::size_t ld;
  static constexpr std::size_t kBytes = T == WeightType::F32 ? 4 : 2;

  HWY_INLINE hn::Vec<DF> vec(DF df, int o, int i) const {
    const std::size_t at = o * ld + i;
    if constexpr (T == WeightType::F32) {
      return hn::LoadU(df, static_cast<const float*>(data) + at);
    } else if constexpr (T == WeightType::BF16) {
      const hn::Rebind<hwy::bfloat16_t, DF> d16;
      return hn::PromoteTo(df, hn::LoadU(d16, static_cast<const hwy::bfloat16_t*>(data) + at));
    } else {
      const hn::Rebind<hwy::float16_t, DF> d16;
      return hn::PromoteTo(df, hn::LoadU(d16, static_cast<const hwy::float16_t*>(data) + at));
    }
  }
  // Element (o, i) as bytes, for prefetching.
  const char* at(int o, std::size_t i) const {
    return static_cast<const char*>(data) + (o * ld + i) * kBytes;
  }
  float scalar(int o, int i) const {
    const std::size_t at = o * ld + i;
    if constexpr (T == WeightType::F32) return static_cast<const float*>(data)[at];
    if constexpr (T == WeightType::BF16) return bf16_to_f32(static_cast<const uint16_t*>(data)[at]);
    return f16_to_f32(static_cast<const uint16_t*>(data)[at]);
  }
};

// One tile: every loaded weight vector is used by all NR input rows, so the
// weights are read once per tile however many rows there are. `o0` is the
// tile's first output feature.
template <int NO, int NR, WeightType T>
HWY_INLINE void GemmTile(const Reader<T>& w, int o0, int in, const float* x, std::size_t ldx,
                         const float* bias, float* y, std::size_t ldy) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  hn::Vec<DF> acc[NO][NR];
  for (int o = 0; o < NO; ++o)
    for (int r = 0; r < NR; ++r) acc[o][r] = hn::Zero(df);
  // The same bytes `ahead` rows on (kernels/weight_prefetch.h); once per
  // vector, which for 16-bit and int8 weights repeats a line.
  const std::size_t ahead = weight_prefetch_rows(NO, w.ld, Reader<T>::kBytes) * w.ld;
  int i = 0;
  for (; i + N <= in; i += N) {
    for (int o = 0; o < NO; ++o) __builtin_prefetch(w.at(o0 + o, i + ahead), 0, 2);
    hn::Vec<DF> wv[NO];
    for (int o = 0; o < NO; ++o) wv[o] = w.vec(df, o0 + o, i);
    for (int r = 0; r < NR; ++r) {
      const auto xv = hn::LoadU(df, x + r * ldx + i);
      for (int o = 0; o < NO; ++o) acc[o][r] = hn::MulAdd(wv[o], xv, acc[o][r]);
    }
  }
  for (int o = 0; o < NO; ++o)
    for (int r = 0; r < NR; ++r) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[o][r]));
      for (int j = i; j < in; ++j) s += w.scalar(o0 + o, j) * x[r * ldx + j];
      y[r * ldy + o0 + o] = s + (bias ? bias[o0 + o] : 0.0f);
    }
}

// All rows against NO weight rows, in groups of kTileRows and a remainder.
template <int NO, WeightType T>
HWY_INLINE void GemmRows(const Reader<T>& w, int o0, int in, const float* x, std::size_t ldx,
                         int rows, const float* bias, float* y, std::size_t ldy) {
  int r = 0;
  for (; r + kTileRows <= rows; r += kTileRows)
    GemmTile<NO, kTileRows>(w, o0, in, x + r * ldx, ldx, bias, y + r * ldy, ldy);
  switch (rows - r) {
    case 3:
      if constexpr (kTileRows > 3)
        GemmTile<NO, 3>(w, o0, in, x + r * ldx, ldx, bias, y + r * ldy, ldy);
      break;
    case 2:
      if constexpr (kTileRows > 2)
        GemmTile<NO, 2>(w, o0, in, x + r * ldx, ldx, bias, y + r * ldy, ldy);
      break;
    case 1:
      GemmTile<NO, 1>(w, o0, in, x + r * ldx, ldx, bias, y + r * ldy, ldy);
      break;
    default:
      break;
  }
}

// One weight row against one input row (a decode step at batch 1). The
// rows of a range are read one after another, so each thread's bytes arrive
// as one sequential stream; a tile of kTileOut rows read side by side made
// kTileOut streams 1.5-4 KiB apart, and in the whole decode step (same
// weights, same memory, steps paired in one process) that took 1.10-1.25x
// this kernel's time with bf16 weights (docs/results/decode.md). Four
// sums along the row keep the multiply-adds from waiting on each other.
template <WeightType T>
HWY_INLINE void GemvRow(const Reader<T>& w, int o, int in, const float* x, std::size_t ahead,
                        const float* bias, float* y) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  // A prefetch per 64-byte line: vectors of 16-bit weights are half a line.
  const int per_line = std::max(1, 64 / (N * static_cast<int>(Reader<T>::kBytes)));
  auto a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0;
  int i = 0;
  for (; i + 4 * N <= in; i += 4 * N) {
    for (int c = 0; c < 4; c += per_line) __builtin_prefetch(w.at(o, i + c * N + ahead), 0, 2);
    a0 = hn::MulAdd(w.vec(df, o, i), hn::LoadU(df, x + i), a0);
    a1 = hn::MulAdd(w.vec(df, o, i + N), hn::LoadU(df, x + i + N), a1);
    a2 = hn::MulAdd(w.vec(df, o, i + 2 * N), hn::LoadU(df, x + i + 2 * N), a2);
    a3 = hn::MulAdd(w.vec(df, o, i + 3 * N), hn::LoadU(df, x + i + 3 * N), a3);
  }
  for (; i + N <= in; i += N) {
    __builtin_prefetch(w.at(o, i + ahead), 0, 2);
    a0 = hn::MulAdd(w.vec(df, o, i), hn::LoadU(df, x + i), a0);
  }
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < in; ++i) s += w.scalar(o, i) * x[i];
  y[o] = s + (bias ? bias[o] : 0.0f);
}

template <WeightType T>
void GemmTyped(const WeightRows& rows_of_w, int in, const float* x, std::size_t ldx, int rows,
               const float* bias, float* y, std::size_t ldy, int o_begin, int o_end) {
  const Reader<T> w{rows_of_w.data, rows_of_w.ld};
  if (rows == 1) {
    prefetch_range_start(rows_of_w, in, o_begin, o_end, 1);
    const std::size_t ahead = weight_prefetch_rows(1, w.ld, Reader<T>::kBytes) * w.ld;
    for (int o = o_begin; o < o_end; ++o) GemvRow(w, o, in, x, ahead, bias, y);
    return;
  }
  prefetch_range_start(rows_of_w, in, o_begin, o_end, kTileOut);
  int o = o_begin;
  for (; o + kTileOut <= o_end; o += kTileOut)
    GemmRows<kTileOut>(w, o, in, x, ldx, rows, bias, y, ldy);
  for (; o < o_end; ++o) GemmRows<1>(w, o, in, x, ldx, rows, bias, y, ldy);
}

void SmallGemm(const WeightRows& w, int in, const float* x, std::size_t ldx, int rows,
               const float* bias, float* y, std::size_t ldy, int o_begin, int o_end) {
  switch (w.type) {
    case WeightType::F32:
      return GemmTyped<WeightType::F32>(w, in, x, ldx, rows, bias, y, ldy, o_begin, o_end);
    case WeightType::BF16:
      return GemmTyped<WeightType::BF16>(w, in, x, ldx, rows, bias, y, ldy, o_begin, o_end);
    case WeightType::F16:
      return GemmTyped<WeightType::F16>(w, in, x, ldx, rows, bias, y, ldy, o_begin, o_end);
    case WeightType::Int8:
    case WeightType::Int4:
      break;  // small_gemm() sends these to small_gemm_packed
  }
}

// W^T x row after row: each weight row is read once, as stored, and scaled
// into the whole output, which stays in L1 (a latent or rank wide).
template <WeightType T>
void TransposedTyped(const WeightRows& rows_of_w, int rows, int cols, const float* x, float* out) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const Reader<T> w{rows_of_w.data, rows_of_w.ld};
  for (int i = 0; i < rows; ++i) {
    const auto xi = hn::Set(df, x[i]);
    int j = 0;
    for (; j + N <= cols; j += N)
      hn::StoreU(hn::MulAdd(xi, w.vec(df, i, j), hn::LoadU(df, out + j)), df, out + j);
    for (; j < cols; ++j) out[j] += x[i] * w.scalar(i, j);
  }
}

void SmallGemmTransposed(const WeightRows& w, int rows, int cols, const float* x, float* out) {
  switch (w.type) {
    case WeightType::F32:
      return TransposedTyped<WeightType::F32>(w, rows, cols, x, out);
    case WeightType::BF16:
      return TransposedTyped<WeightType::BF16>(w, rows, cols, x, out);
    case WeightType::F16:
      return TransposedTyped<WeightType::F16>(w, rows, cols, x, out);
    case WeightType::Int8:
    case WeightType::Int4:
      break;  // refused by small_gemm_transposed()
  }
}

const char* GemmTargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(SmallGemm);
HWY_EXPORT(SmallGemmTransposed);
HWY_EXPORT(GemmTargetName);

void small_gemm(const WeightRows& w, int in, const float* x, std::size_t ldx, int rows,
                const float* bias, float* y, std::size_t ldy, int o_begin, int o_end) {
  if (rows <= 0 || o_end <= o_begin) return;
  // Quantized per call for int8 weights; callers that split one product over
  // threads prepare the rows once (model/layer_ops.cpp, runtime/fused_step.cpp).
  thread_local Int16RowBuffer buffer;
  small_gemm(w, in, prepare_gemm_rows(w, in, x, ldx, rows, buffer), rows, bias, y, ldy, o_begin,
             o_end);
}

GemmRows prepare_gemm_rows(const WeightRows& w, int in, const float* x, std::size_t ldx, int rows,
                           Int16RowBuffer& buffer) {
  GemmRows r{x, ldx, {}};
  if (packed_weights(w.type) && rows > 0) r.xq = buffer.quantize(x, ldx, rows, in);
  return r;
}

void small_gemm(const WeightRows& w, int in, const GemmRows& x, int rows, const float* bias,
                float* y, std::size_t ldy, int o_begin, int o_end) {
  if (rows <= 0 || o_end <= o_begin) return;
  if (packed_weights(w.type))
    return small_gemm_packed(w, in, x.xq, rows, bias, y, ldy, o_begin, o_end);
  HWY_DYNAMIC_DISPATCH(SmallGemm)(w, in, x.x, x.ldx, rows, bias, y, ldy, o_begin, o_end);
}

void small_gemm(const float* w, std::size_t ldw, int in, const float* x, std::size_t ldx, int rows,
                const float* bias, float* y, std::size_t ldy, int o_begin, int o_end) {
  small_gemm(WeightRows{WeightType::F32, w, ldw, nullptr, 0}, in, x, ldx, rows, bias, y, ldy,
             o_begin, o_end);
}

void small_gemm_transposed(const WeightRows& w, int rows, int cols, const float* x, float* out) {
  if (packed_weights(w.type))
    throw Error(std::string("a transposed product of ") + weight_type_name(w.type) +
                " weights: their blocks are packed for products by rows");
  HWY_DYNAMIC_DISPATCH(SmallGemmTransposed)(w, rows, cols, x, out);
}

const char* small_gemm_target() { return HWY_DYNAMIC_DISPATCH(GemmTargetName)(); }

}  // namespace thinkeys
#endif  // HWY_ONCE

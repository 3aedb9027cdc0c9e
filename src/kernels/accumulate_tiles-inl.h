// Value accumulation acc_j = alpha_j * acc_j + sum_t p[j][t] * v_t in
// register tiles, with the online softmax's rescale folded in. Per-target
// Highway code for decode_attention.cpp.
#include <algorithm>
#include <cstddef>

#if defined(THINKEYS_KERNELS_ACCUMULATE_TILES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_ACCUMULATE_TILES_INL_H_
#undef THINKEYS_KERNELS_ACCUMULATE_TILES_INL_H_
#else
#define THINKEYS_KERNELS_ACCUMULATE_TILES_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
#include "kernels/attention_tiles-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Lanes [i, i + C * N) of acc_j = alpha_j * acc_j + sum_t p[j][t] * v_t for
// NQ queries and tokens [t0, t1): the C x NQ accumulators stay in registers
// over the tokens, each value vector is loaded (and converted) once for the
// NQ queries, and the softmax rescale (alpha, null for none) costs one
// multiply per accumulator.
template <int NQ, int C, class Rows>
HWY_INLINE void AccumulateTile(const Rows& rows, int t0, int t1, int i, const float* p, int lds,
                               const float* alpha, float* acc, int ldv, const Ahead& ahead) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  hn::Vec<DF> a[NQ][C];
  for (int j = 0; j < NQ; ++j) {
    const auto va = hn::Set(df, alpha ? alpha[j] : 1.0f);
    for (int c = 0; c < C; ++c) a[j][c] = hn::LoadU(df, acc + j * ldv + i + c * N);
    if (alpha)
      for (int c = 0; c < C; ++c) a[j][c] = hn::Mul(a[j][c], va);
  }
  for (int t = t0; t < t1; ++t) {
    ahead.row();
    hn::Vec<DF> v[C];
    for (int c = 0; c < C; ++c) v[c] = rows(t, i + c * N);
    for (int j = 0; j < NQ; ++j) {
      const auto pj = hn::Set(df, p[j * lds + t]);
      for (int c = 0; c < C; ++c) a[j][c] = hn::MulAdd(pj, v[c], a[j][c]);
    }
  }
  for (int j = 0; j < NQ; ++j)
    for (int c = 0; c < C; ++c) hn::StoreU(a[j][c], df, acc + j * ldv + i + c * N);
}

// Whole row width in tiles of C vectors, then C / 2, ... down to 1; the
// first tile moves the prefetch cursor on per token.
template <int NQ, int C, class Rows>
HWY_INLINE void AccumulateFrom(const Rows& rows, int t0, int t1, int i, int w, const float* p,
                               int lds, const float* alpha, float* acc, int ldv, Ahead& ahead) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  for (; i + C * N <= w; i += C * N, ahead = Ahead{})
    AccumulateTile<NQ, C>(rows, t0, t1, i, p, lds, alpha, acc, ldv, ahead);
  if constexpr (C > 1)
    AccumulateFrom<NQ, C / 2>(rows, t0, t1, i, w, p, lds, alpha, acc, ldv, ahead);
}

constexpr int TileVectors(int nq) {
  const int c = kAccRegs / nq;
  return c >= 8 ? 8 : c >= 4 ? 4 : c >= 2 ? 2 : 1;
}

// Tokens in chunks, all tiles of a chunk before the next: a row's first
// reads then come at an even pace over the pass (one chunk's rows at a
// time) instead of all in the first tile, so the prefetch cursor, moved on
// by the first tile of each chunk, issues its requests evenly too. The
// accumulators go through memory once per chunk and tile: loads and stores,
// which do not compete with the FMAs for ports.
constexpr int kChunkTokens = 16;
template <int NQ, class Rows>
void AccumulatePass(const Rows& rows, int n, int w, const float* p, int lds, const float* alpha,
                    float* acc, int ldv, Ahead& ahead) {
  for (int t0 = 0; t0 < n; t0 += kChunkTokens) {
    Ahead chunk_ahead = ahead;
    AccumulateFrom<NQ, TileVectors(NQ)>(rows, t0, std::min(n, t0 + kChunkTokens), 0, w, p, lds,
                                        t0 == 0 ? alpha : nullptr, acc, ldv, chunk_ahead);
  }
  ahead = Ahead{};
}

// acc_g = alpha_g * acc_g + sum_t p[g][t] * v_t for g in [g0, g1) over the
// n rows of one value head, in passes of up to 4 queries.
template <class Rows>
void Accumulate(const Rows& rows, int n, int w, const float* p, int lds, const float* alpha, int g0,
                int g1, float* acc, int ldv, Ahead ahead) {
  QueryPasses<4>(g0, g1, [&](auto nq, int g) {
    AccumulatePass<nq.value>(rows, n, w, p + g * lds, lds, alpha + g, acc + g * ldv, ldv, ahead);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_ACCUMULATE_TILES_INL_H_

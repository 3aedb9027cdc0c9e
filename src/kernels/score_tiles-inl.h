// Scores s[j][t] = q_j . k_t of a block's keys against a head's queries:
// channel tiles for keys stored by channel, token tiles for keys stored by
// token. Per-target Highway code for decode_attention.cpp.
#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "kernels/prefetch_cursor.h"

#if defined(THINKEYS_KERNELS_SCORE_TILES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_SCORE_TILES_INL_H_
#undef THINKEYS_KERNELS_SCORE_TILES_INL_H_
#else
#define THINKEYS_KERNELS_SCORE_TILES_INL_H_
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

// Lanes [i0, i0 + TV * N) of s[j] (+)= sum over channels [c0, c1) of
// q_j[c] * k_c for NQ queries: a channel's token vectors are loaded (and
// converted) once for all NQ queries, and each score lane is a plain FMA
// chain, so nothing is summed across lanes. Below 8 chains the channels
// alternate between two sets of accumulators to hide the FMA latency. With
// a cursor, it is moved on channel_bytes after each channel; the caller
// makes sure the channels fit in its current range.
template <int NQ, int TV, class Ch>
HWY_INLINE void ChannelTile(const Ch& ch, int i0, int c0, int c1, const float* q, int ldq, float* s,
                            int lds, bool first, PrefetchCursor<>* cursor,
                            std::size_t channel_bytes) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  constexpr int kSets = NQ * TV < 8 ? 2 : 1;
  hn::Vec<DF> acc[kSets][NQ][TV];
  for (int j = 0; j < NQ; ++j)
    for (int v = 0; v < TV; ++v) {
      acc[0][j][v] = first ? hn::Zero(df) : hn::LoadU(df, s + j * lds + i0 + v * N);
      if constexpr (kSets == 2) acc[1][j][v] = hn::Zero(df);
    }
  auto channel = [&](int c, auto set) {
    hn::Vec<DF> k[TV];
    for (int v = 0; v < TV; ++v) k[v] = ch(c, i0 + v * N);
    for (int j = 0; j < NQ; ++j) {
      const auto qv = hn::Set(df, q[j * ldq + c]);
      for (int v = 0; v < TV; ++v) acc[set][j][v] = hn::MulAdd(qv, k[v], acc[set][j][v]);
    }
    if (cursor) cursor->advance_within(channel_bytes);
  };
  int c = c0;
  for (; c + kSets <= c1; c += kSets) {
    channel(c, std::integral_constant<int, 0>());
    if constexpr (kSets == 2) channel(c + 1, std::integral_constant<int, kSets - 1>());
  }
  if (c < c1) channel(c, std::integral_constant<int, 0>());
  for (int j = 0; j < NQ; ++j)
    for (int v = 0; v < TV; ++v) {
      auto a = acc[0][j][v];
      if constexpr (kSets == 2) a = hn::Add(a, acc[1][j][v]);
      hn::StoreU(a, df, s + j * lds + i0 + v * N);
    }
}

// Lanes [i0, i0 + TV * N) of s[j] = (or +=, unless first) the scale of
// group g times p[j], for NQ queries: a quantized group's sums scaled.
template <int NQ, int TV, class Ch>
HWY_INLINE void ScaleGroup(const Ch& ch, int g, int i0, const float* p, float* s, int lds,
                           bool first) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int v = 0; v < TV; ++v) {
    const auto sc = ch.scale(g, i0 + v * N);
    for (int j = 0; j < NQ; ++j) {
      float* out = s + j * lds + i0 + v * N;
      const auto x = hn::Mul(sc, hn::LoadU(df, p + j * lds + i0 + v * N));
      hn::StoreU(first ? x : hn::Add(hn::LoadU(df, out), x), df, out);
    }
  }
}

// s[g][t] = q_g . k_t for all G queries and the n tokens of `ch`, r
// channels. Token tiles of 4 vectors, then 2, then 1; each tile runs over
// all channels (of a scale group, for quantized keys) with its sums in
// registers. The first tile moves the prefetch cursor on channel_bytes per
// channel, inline: it used to go through the scores between groups of 4-16
// channels so that the cursor's out-of-line slow path could run between
// them, which cost the gqa f16 score pass a fifth of its time with the
// cache resident (docs/results/decode.md). The slow path now runs only
// where a channel leaves the cursor's current range. Quantized keys sum each
// scale group's channels into `partial` (rows of lds) and add them to s
// scaled. Tokens past the last whole vector are scored one by one.
template <class Ch>
void ChannelScores(const Ch& ch, int n, int r, const float* q, int ldq, int G, float* s, int lds,
                   float* partial, PrefetchCursor<>* cursor, std::size_t channel_bytes) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  const int full = n / N;
  int scale_group = r;
  if constexpr (Ch::kScaled) scale_group = ch.group;
  QueryPasses<kPassQueries>(0, G, [&](auto nq, int g) {
    const float* qg = q + g * ldq;
    float* sg = s + g * lds;
    float* sums = Ch::kScaled ? partial : sg;
    int v = 0;
    auto tiles = [&](auto tv) {
      for (; v + tv.value <= full; v += tv.value)
        for (int g0 = 0; g0 < r; g0 += scale_group) {
          const int g1 = std::min(r, g0 + scale_group);
          for (int c0 = g0, c1 = g1; c0 < g1; c0 = c1) {
            PrefetchCursor<>* inline_cursor = nullptr;
            c1 = g1;
            if (cursor && v == 0) {
              const std::size_t room = cursor->bytes_in_range();
              const auto fit = static_cast<int>(std::min<std::size_t>(
                  channel_bytes > 0 ? room / channel_bytes : g1 - c0, g1 - c0));
              if (fit > 0) {
                c1 = c0 + fit;
                inline_cursor = cursor;
              } else {
                c1 = c0 + 1;
              }
            }
            ChannelTile<nq.value, tv.value>(ch, v * N, c0, c1, qg, ldq, sums, lds, c0 == g0,
                                            inline_cursor, channel_bytes);
            if (cursor && v == 0 && !inline_cursor) cursor->advance(channel_bytes);
          }
          if constexpr (Ch::kScaled)
            ScaleGroup<nq.value, tv.value>(ch, g0 / scale_group, v * N, sums, sg, lds, g0 == 0);
        }
    };
    tiles(std::integral_constant<int, 4>());
    tiles(std::integral_constant<int, 2>());
    tiles(std::integral_constant<int, 1>());
    if (cursor && full == 0) cursor->advance(channel_bytes * r);
    cursor = nullptr;
    for (int t = full * N; t < n; ++t)
      for (int j = 0; j < nq.value; ++j) {
        float acc = 0;
        for (int c = 0; c < r; ++c) acc += qg[j * ldq + c] * ch.at(c, t);
        sg[j * lds + t] = acc;
      }
  });
}

// s[j][t] = q_j . k_t for NQ queries (rows of q, stride ldq) and T tokens
// starting at t0. Each key vector is loaded (and converted) once for all NQ
// queries; NQ x T independent FMA chains hide the FMA latency.
template <int NQ, int T, class Rows>
HWY_INLINE void ScoreTile(const Rows& rows, int t0, int w, const float* q, int ldq, float* s,
                          int lds) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  hn::Vec<DF> acc[NQ][T];
  for (int j = 0; j < NQ; ++j)
    for (int u = 0; u < T; ++u) acc[j][u] = hn::Zero(df);
  for (int i = 0; i < w; i += N) {
    hn::Vec<DF> k[T];
    for (int u = 0; u < T; ++u) k[u] = rows(t0 + u, i);
    for (int j = 0; j < NQ; ++j) {
      const auto qv = hn::LoadU(df, q + j * ldq + i);
      for (int u = 0; u < T; ++u) acc[j][u] = hn::MulAdd(qv, k[u], acc[j][u]);
    }
  }
  for (int j = 0; j < NQ; ++j) {
    if constexpr (T == 4) {
      StoreSums4(acc[j][0], acc[j][1], acc[j][2], acc[j][3], s + j * lds + t0);
    } else {
      for (int u = 0; u < T; ++u) s[j * lds + t0 + u] = hn::GetLane(hn::SumOfLanes(df, acc[j][u]));
    }
  }
}

template <int NQ, class Rows>
void ScorePass(const Rows& rows, int n, int w, const float* q, int ldq, float* s, int lds,
               const Ahead& ahead) {
  int t = 0;
  for (; t + kTokens <= n; t += kTokens) {
    for (int u = 0; u < kTokens; ++u) ahead.row();
    ScoreTile<NQ, kTokens>(rows, t, w, q, ldq, s, lds);
  }
  for (; t < n; ++t) {
    ahead.row();
    ScoreTile<NQ, 1>(rows, t, w, q, ldq, s, lds);
  }
}

// s[g][t] = q_g . k_t for g in [g0, g1), t in [0, n), in passes of up to
// kPassQueries queries. w is a multiple of the lanes.
// The first pass moves the prefetch cursor (`ahead`) on per token (ScoreAdvance).
template <class Rows>
void Scores(const Rows& rows, int n, int w, const float* q, int ldq, int g0, int g1, float* s,
            int lds, Ahead ahead) {
  QueryPasses<kPassQueries>(g0, g1, [&](auto nq, int g) {
    ScorePass<nq.value>(rows, n, w, q + g * ldq, ldq, s + g * lds, lds, ahead);
    ahead = Ahead{};
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_SCORE_TILES_INL_H_

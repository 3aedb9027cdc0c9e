// The register tiles of decode attention: scores s[j][t] = q_j . k_t of a
// block's keys against a head's queries (channel tiles for keys stored by
// channel, token tiles otherwise), the online softmax's maximum and
// exp(x - m) with its sum, and the value accumulation
// acc_j = alpha_j * acc_j + sum_t p[j][t] * v_t with the rescale folded in.
// They share the register budget per target, the four-way lane reduction,
// query passes and the prefetch cursor's per-row pacing. Per-target Highway
// code for decode_attention.cpp.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
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

// Lanes [i0, i0 + TV * N) of s[j] (+)= sum over channels [c0, c1) of
// q_j[c] * k_c for NQ queries: a channel's token vectors are loaded (and
// converted) once for all NQ queries, and each score lane is a plain FMA
// chain, so nothing is summed across lanes. Below 8 chains the channels
// alternate between two sets of accumulators to hide the FMA latency. With
// a cursor, it is moved on channel_bytes after each channel; the caller
// makes sure the channels fit in its current range.
//
// Quantized keys (Ch::kScaled) pass the scale group g of channels [c0, c1):
// the sums start at zero and are multiplied by the tokens' scales in
// registers before they are added to s (or stored, when first). Scaling is
// linear, so a group cut into pieces (by the cursor's range) sums the same.
// This replaced summing into a scratch row and scaling it in a second pass
// (a store and two reloads per score vector), which made int8 thin keys
// slower than f16 ones (docs/results/decode.md).
template <int NQ, int TV, class Ch>
HWY_INLINE void ChannelTile(const Ch& ch, int i0, int c0, int c1, const float* q, int ldq, float* s,
                            int lds, bool first, PrefetchCursor<>* cursor,
                            std::size_t channel_bytes, int g = 0) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  constexpr int kSets = NQ * TV < 8 ? 2 : 1;
  hn::Vec<DF> acc[kSets][NQ][TV];
  for (int j = 0; j < NQ; ++j)
    for (int v = 0; v < TV; ++v) {
      acc[0][j][v] = first || Ch::kScaled ? hn::Zero(df) : hn::LoadU(df, s + j * lds + i0 + v * N);
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
  hn::Vec<DF> sc[TV];
  if constexpr (Ch::kScaled)
    for (int v = 0; v < TV; ++v) sc[v] = ch.scale(g, i0 + v * N);
  for (int j = 0; j < NQ; ++j)
    for (int v = 0; v < TV; ++v) {
      auto a = acc[0][j][v];
      if constexpr (kSets == 2) a = hn::Add(a, acc[1][j][v]);
      float* out = s + j * lds + i0 + v * N;
      if constexpr (Ch::kScaled)
        a = first ? hn::Mul(a, sc[v]) : hn::MulAdd(a, sc[v], hn::LoadU(df, out));
      hn::StoreU(a, df, out);
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
// where a channel leaves the cursor's current range. Quantized keys scale
// each group's sums in registers (ChannelTile). Tokens past the last whole
// vector are scored one by one.
template <class Ch>
void ChannelScores(const Ch& ch, int n, int r, const float* q, int ldq, int G, float* s, int lds,
                   PrefetchCursor<>* cursor, std::size_t channel_bytes) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  const int full = n / N;
  int scale_group = r;
  if constexpr (Ch::kScaled) scale_group = ch.group;
  QueryPasses<kPassQueries>(0, G, [&](auto nq, int g) {
    const float* qg = q + g * ldq;
    float* sg = s + g * lds;
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
            // Scaled sums start at zero per piece and are added to s
            // (stored by the first piece of the first group).
            const bool first = Ch::kScaled ? c0 == 0 : c0 == g0;
            ChannelTile<nq.value, tv.value>(ch, v * N, c0, c1, qg, ldq, sg, lds, first,
                                            inline_cursor, channel_bytes, g0 / scale_group);
            if (cursor && v == 0 && !inline_cursor) cursor->advance(channel_bytes);
          }
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

HWY_INLINE float Max(const float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  auto m = hn::Set(df, -std::numeric_limits<float>::infinity());
  for (int i = 0; i < n; i += N) m = hn::Max(m, hn::LoadU(df, x + i));
  return hn::GetLane(hn::MaxOfLanes(df, m));
}

// exp(x) for the x <= 0 of a softmax (x minus the running max), within
// about 1e-7 of it relative: 2^k * p(r) with r = x - k ln 2, |r| <= ln 2 / 2,
// and p the Taylor polynomial of degree 7 (its remainder r^8 / 8! < 1e-8).
// Below -86 it gives 0 (e^-86 < 5e-38 cannot move a sum that holds the
// max's 1), and -inf gives 0; NaN stays NaN. hn::Exp covers every x in
// twice the instructions: with it the exponentials were a fifth of a
// resident gqa thin-f16 block, and this took 4-6% off gqa blocks and 1-2.5%
// off mha ones (paired calls, docs/results/decode.md).
HWY_INLINE hn::Vec<DF> ExpNonPositive(hn::Vec<DF> x) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const auto k = hn::Round(hn::Mul(x, hn::Set(df, 1.44269504088896341f)));
  auto r = hn::NegMulAdd(k, hn::Set(df, 0.693145751953125f), x);   // ln 2, high bits
  r = hn::NegMulAdd(k, hn::Set(df, 1.42860682030941723e-06f), r);  // and the rest
  auto p = hn::Set(df, 1.0f / 5040);
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 720));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 120));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 24));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 6));
  p = hn::MulAdd(p, r, hn::Set(df, 0.5f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f));
  // times 2^k, built from its exponent bits (k >= -124 where it is kept);
  // a NaN x makes p NaN, and so the product.
  const auto two_k =
      hn::BitCast(df, hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, k), hn::Set(di, 127))));
  const auto y = hn::Mul(p, two_k);
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(df, -86.0f)), y);
}

// x = exp(x - m) in place; returns the sum. Padding holds -inf and becomes 0.
HWY_INLINE float ExpShiftSum(float m, float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto vm = hn::Set(df, m);
  auto sum = hn::Zero(df);
  for (int i = 0; i < n; i += N) {
    const auto e = ExpNonPositive(hn::Sub(hn::LoadU(df, x + i), vm));
    hn::StoreU(e, df, x + i);
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(df, sum));
}

// The online softmax of one block for G queries (rows of s, stride lds, n
// scores; the padding to lds is set to -inf here): each block max moves m
// on, alpha gets the factor that rescales what was accumulated so far, l
// the rescaled sum plus the block's, and the scores become their weights.
// Every query's max first, then every query's exponentials: the chains of
// different queries then overlap.
HWY_INLINE void BlockSoftmax(float* s, int lds, int n, int G, float* m, float* l, float* alpha) {
  for (int g = 0; g < G; ++g) {
    float* sg = s + g * lds;
    std::fill(sg + n, sg + lds, -std::numeric_limits<float>::infinity());
    const float m_new = std::max(m[g], Max(sg, lds));
    alpha[g] = 1.0f;
    if (m_new > m[g]) {
      alpha[g] = std::exp(m[g] - m_new);  // 0 on the first block
      l[g] *= alpha[g];
      m[g] = m_new;
    }
  }
  for (int g = 0; g < G; ++g) l[g] += ExpShiftSum(m[g], s + g * lds, lds);
}

// Lanes [i, i + C * N) of acc_j = alpha_j * acc_j + sum_t p[j][t] * v_t for
// NQ queries and tokens [t0, t1): the C x NQ accumulators stay in registers
// over the tokens, each value vector is loaded (and converted) once for the
// NQ queries, and the softmax rescale (alpha, null for none) costs one
// multiply per accumulator. The cursor moves on per token only where the
// tile's rows stay in its current range (advance_within: inline, no call
// for the accumulators to be kept across); otherwise by all of them before
// the loop. Against a per-token advance (whose slow path is a call), 60
// paired kernel calls per cell, gqa and mha, 1K-4K, three caches: 0.95-0.99x
// the time with the cache resident, 0.94-1.02x from DRAM.
template <int NQ, int C, class Rows>
HWY_INLINE void AccumulateTile(const Rows& rows, int t0, int t1, int i, const float* p, int lds,
                               const float* alpha, float* acc, int ldv, const Ahead& ahead) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  PrefetchCursor<>* cursor = ahead.cursor;
  if (cursor) {
    const std::size_t bytes = ahead.row_bytes * static_cast<std::size_t>(t1 - t0);
    if (cursor->bytes_in_range() < bytes) {
      cursor->advance(bytes);
      cursor = nullptr;
    }
  }
  // Below 8 chains the FMA latency, not its throughput, would set the pace
  // (mha: one query, a 64-wide row is 4 vectors), so even and odd tokens
  // go to two sets of accumulators, added at the end (1-2% off a resident
  // mha block in paired calls).
  constexpr int kSets = NQ * C < 8 ? 2 : 1;
  hn::Vec<DF> a[kSets][NQ][C];
  for (int j = 0; j < NQ; ++j) {
    const auto va = hn::Set(df, alpha ? alpha[j] : 1.0f);
    for (int c = 0; c < C; ++c) a[0][j][c] = hn::LoadU(df, acc + j * ldv + i + c * N);
    if (alpha)
      for (int c = 0; c < C; ++c) a[0][j][c] = hn::Mul(a[0][j][c], va);
    if constexpr (kSets == 2)
      for (int c = 0; c < C; ++c) a[1][j][c] = hn::Zero(df);
  }
  auto token = [&](int t, auto set) {
    if (cursor) cursor->advance_within(ahead.row_bytes);
    hn::Vec<DF> v[C];
    for (int c = 0; c < C; ++c) v[c] = rows(t, i + c * N);
    for (int j = 0; j < NQ; ++j) {
      const auto pj = hn::Set(df, p[j * lds + t]);
      for (int c = 0; c < C; ++c) a[set][j][c] = hn::MulAdd(pj, v[c], a[set][j][c]);
    }
  };
  int t = t0;
  for (; t + kSets <= t1; t += kSets) {
    token(t, std::integral_constant<int, 0>());
    if constexpr (kSets == 2) token(t + 1, std::integral_constant<int, 1>());
  }
  if (t < t1) token(t, std::integral_constant<int, 0>());
  for (int j = 0; j < NQ; ++j)
    for (int c = 0; c < C; ++c) {
      auto sum = a[0][j][c];
      if constexpr (kSets == 2) sum = hn::Add(sum, a[1][j][c]);
      hn::StoreU(sum, df, acc + j * ldv + i + c * N);
    }
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

#endif  // THINKEYS_KERNELS_ATTENTION_TILES_INL_H_

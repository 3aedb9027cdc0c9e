// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/prefill_attention.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include "kernels/prefill_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "util/work_pool.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using V = hn::Vec<DF>;

// A task's query rows lie across the lanes of kQVecs vectors, so the softmax
// over keys is lane-wise and neither keys nor values need transposing: a
// score tile is kKeys keys x kQVecs vectors of accumulators, which must stay
// in registers (16 of AVX-512's 32; 8 of the 16 elsewhere).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kQVecs = 4;
#else
constexpr int kQVecs = 2;
#endif
constexpr int kKeys = 4;
// Keys per softmax block: one rescale of the running sums per block.
constexpr int kBlockKeys = 64;

struct Tile {
  const PrefillAttentionShape& s;
  const PrefillAttentionArgs& a;
  float* qt;  // [key_width][rows]: scaled queries, transposed
  float* st;  // [kBlockKeys][rows]: scores, then probabilities
  float* ot;  // [head_dim][rows]: output accumulators, transposed
  int rows;   // kQVecs * lanes
};

// st[s - s0] = q . k(s) for keys s in [s0, s1), a tile of kKeys at a time.
template <int NK>
HWY_INLINE void Scores(DF df, const Tile& t, const float* k, int s, float* st) {
  const int L = static_cast<int>(hn::Lanes(df));
  V acc[NK][kQVecs];
  for (int kk = 0; kk < NK; ++kk)
    for (int v = 0; v < kQVecs; ++v) acc[kk][v] = hn::Zero(df);
  const float* rows[NK];
  for (int kk = 0; kk < NK; ++kk) rows[kk] = k + (s + kk) * t.a.k_row_stride;
  for (int c = 0; c < t.s.key_width; ++c) {
    V q[kQVecs];
    for (int v = 0; v < kQVecs; ++v) q[v] = hn::LoadU(df, t.qt + c * t.rows + v * L);
    for (int kk = 0; kk < NK; ++kk) {
      const V kc = hn::Set(df, rows[kk][c]);
      for (int v = 0; v < kQVecs; ++v) acc[kk][v] = hn::MulAdd(kc, q[v], acc[kk][v]);
    }
  }
  for (int kk = 0; kk < NK; ++kk)
    for (int v = 0; v < kQVecs; ++v) hn::StoreU(acc[kk][v], df, st + kk * t.rows + v * L);
}

// ot[j] += sum_s st[s] v(s, j) over the block's n keys, NJ output columns at once.
template <int NJ>
HWY_INLINE void Values(DF df, const Tile& t, const float* v, int n, int j) {
  const int L = static_cast<int>(hn::Lanes(df));
  V acc[NJ][kQVecs];
  for (int jj = 0; jj < NJ; ++jj)
    for (int q = 0; q < kQVecs; ++q) acc[jj][q] = hn::LoadU(df, t.ot + (j + jj) * t.rows + q * L);
  for (int s = 0; s < n; ++s) {
    V p[kQVecs];
    for (int q = 0; q < kQVecs; ++q) p[q] = hn::LoadU(df, t.st + s * t.rows + q * L);
    const float* row = v + s * t.a.v_row_stride + j;
    for (int jj = 0; jj < NJ; ++jj) {
      const V vj = hn::Set(df, row[jj]);
      for (int q = 0; q < kQVecs; ++q) acc[jj][q] = hn::MulAdd(vj, p[q], acc[jj][q]);
    }
  }
  for (int jj = 0; jj < NJ; ++jj)
    for (int q = 0; q < kQVecs; ++q) hn::StoreU(acc[jj][q], df, t.ot + (j + jj) * t.rows + q * L);
}

// Query head h, query rows [t0, t0 + rows) (those past the last token are
// padding whose outputs are dropped).
void AttendTile(const Tile& t, int h, int t0) {
  const DF df;
  const PrefillAttentionShape& s = t.s;
  const PrefillAttentionArgs& a = t.a;
  const int L = static_cast<int>(hn::Lanes(df));
  const int w = s.key_width, d = s.head_dim, rows = t.rows;
  const int real = std::min(rows, s.tokens - t0);
  for (int c = 0; c < w; ++c)
    for (int i = 0; i < rows; ++i)
      t.qt[c * rows + i] = i < real ? s.scale * a.q[(t0 + i) * a.ldq + h * w + c] : 0.0f;
  std::fill(t.ot, t.ot + static_cast<std::size_t>(d) * rows, 0.0f);
  const float* k = a.k + (h / (s.heads / s.key_heads)) * a.k_head_stride;
  const float* v = a.v + (h / (s.heads / s.value_heads)) * a.v_head_stride;

  const int p_first = s.start + t0, p_last = s.start + t0 + real - 1;
  const int k_end = p_last + 1;
  const int k_begin = s.window > 0 ? std::max(0, p_first - s.window + 1) : 0;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  V m[kQVecs], l[kQVecs], pos[kQVecs];
  for (int q = 0; q < kQVecs; ++q) {
    m[q] = hn::Set(df, neg_inf);
    l[q] = hn::Zero(df);
    pos[q] = hn::Add(hn::Iota(df, 0.0f), hn::Set(df, static_cast<float>(p_first + q * L)));
  }
  for (int s0 = k_begin; s0 < k_end; s0 += kBlockKeys) {
    const int n = std::min(kBlockKeys, k_end - s0);
    int i = 0;
    for (; i + kKeys <= n; i += kKeys) Scores<kKeys>(df, t, k, s0 + i, t.st + i * rows);
    for (; i < n; ++i) Scores<1>(df, t, k, s0 + i, t.st + i * rows);
    // Keys past a row's position, or before its window, are masked. Positions
    // are exact in f32 below 2^24.
    const bool causal_edge = s0 + n - 1 > p_first;
    const bool window_edge = s.window > 0 && s0 <= p_last - s.window;
    for (int q = 0; q < kQVecs; ++q) {
      V bmax = hn::Set(df, neg_inf);
      for (int j = 0; j < n; ++j) {
        float* row = t.st + j * rows + q * L;
        V x = hn::LoadU(df, row);
        if (causal_edge || window_edge) {
          const V key = hn::Set(df, static_cast<float>(s0 + j));
          auto ok = hn::Le(key, pos[q]);
          if (window_edge)
            ok = hn::And(ok,
                         hn::Gt(key, hn::Sub(pos[q], hn::Set(df, static_cast<float>(s.window)))));
          x = hn::IfThenElse(ok, x, hn::Set(df, neg_inf));
          hn::StoreU(x, df, row);
        }
        bmax = hn::Max(bmax, x);
      }
      const V m_new = hn::Max(m[q], bmax);
      // A row that has seen no key yet keeps -inf; shifting by 0 keeps its
      // probabilities and rescale at exactly 0 instead of NaN.
      const V shift = hn::IfThenZeroElse(hn::Eq(m_new, hn::Set(df, neg_inf)), m_new);
      const V alpha = hn::Exp(df, hn::Sub(m[q], shift));
      m[q] = m_new;
      V sum = hn::Zero(df);
      for (int j = 0; j < n; ++j) {
        float* row = t.st + j * rows + q * L;
        const V p = hn::Exp(df, hn::Sub(hn::LoadU(df, row), shift));
        hn::StoreU(p, df, row);
        sum = hn::Add(sum, p);
      }
      l[q] = hn::MulAdd(l[q], alpha, sum);
      for (int j = 0; j < d; ++j) {
        float* o = t.ot + j * rows + q * L;
        hn::StoreU(hn::Mul(hn::LoadU(df, o), alpha), df, o);
      }
    }
    const float* vb = v + s0 * a.v_row_stride;
    int j = 0;
    for (; j + 4 <= d; j += 4) Values<4>(df, t, vb, n, j);
    for (; j < d; ++j) Values<1>(df, t, vb, n, j);
  }
  for (int q = 0; q < kQVecs; ++q) hn::StoreU(l[q], df, t.st + q * L);  // st is free now
  for (int i = 0; i < real; ++i) {
    float* out = a.out + (t0 + i) * a.ldo + h * d;
    const float inv = 1.0f / t.st[i];
    for (int j = 0; j < d; ++j) out[j] = t.ot[j * rows + i] * inv;
  }
}

int TileRows() { return kQVecs * static_cast<int>(hn::Lanes(DF())); }

void PrefillAttention(const PrefillAttentionShape& s, const PrefillAttentionArgs& a,
                      WorkPool& pool) {
  const int rows = TileRows();
  const int blocks = (s.tokens + rows - 1) / rows;
  const std::size_t need = static_cast<std::size_t>(rows) * (s.key_width + kBlockKeys + s.head_dim);
  // Later query blocks see more keys: hand them out first so the last items
  // are the short ones.
  pool.run(blocks * s.heads, [&](int item, int) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < need) scratch.resize(need);
    float* base = scratch.data();
    Tile t{s, a, base, base + rows * s.key_width, base + rows * (s.key_width + kBlockKeys), rows};
    const int block = blocks - 1 - item / s.heads, h = item % s.heads;
    AttendTile(t, h, block * rows);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(PrefillAttention);

void prefill_attention(const PrefillAttentionShape& shape, const PrefillAttentionArgs& args,
                       WorkPool& pool) {
  if (shape.tokens <= 0) return;
  HWY_DYNAMIC_DISPATCH(PrefillAttention)(shape, args, pool);
}

}  // namespace thinkeys
#endif  // HWY_ONCE

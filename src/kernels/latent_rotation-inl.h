// Latent keys (design.md section 4, Latent mode): the full-width key rebuilt
// from the cached latent, and the RoPE rotation of pairs. Per-target Highway
// code for decode_attention.cpp.

#if defined(THINKEYS_KERNELS_LATENT_ROTATION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_LATENT_ROTATION_INL_H_
#undef THINKEYS_KERNELS_LATENT_ROTATION_INL_H_
#else
#define THINKEYS_KERNELS_LATENT_ROTATION_INL_H_
#endif

#include <cstddef>
#include <type_traits>

// clang-format off
#include <hwy/highway.h>
#include "kernels/attention_tiles-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Vectors of a key chunk one pass of RebuildTokens keeps in registers: its
// 4 tokens x kRebuildVectors accumulators are the value tiles' budget
// (kAccRegs: 16 on AVX-512, 8 elsewhere), beside the chunk of P.
constexpr int kRebuildVectors = kAccRegs / 4;

// Tokens [t0, t0 + T) of Rebuild: every loaded vector of P serves the T
// tokens, and the T x V accumulators of a chunk stay in registers across j.
// T and V are compile-time so that they do: with the token count known only
// at run time, the compiler kept the accumulators on the stack and stored
// them every j (half of the latent kernel's samples were in Rebuild, most on
// those stores).
template <int T>
HWY_INLINE void RebuildTokens(const float* c, int ldc, int ldj, int t0, int r, const float* up_t,
                              int W, float* k, int ldk) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  auto chunk = [&](int i, auto vectors) {
    constexpr int V = decltype(vectors)::value;
    hn::Vec<DF> a[T][V];
    for (int u = 0; u < T; ++u)
      for (int v = 0; v < V; ++v) a[u][v] = hn::Zero(df);
    for (int j = 0; j < r; ++j) {
      hn::Vec<DF> p[V];
      for (int v = 0; v < V; ++v)
        p[v] = hn::LoadU(df, up_t + static_cast<std::size_t>(j) * W + i + v * N);
      for (int u = 0; u < T; ++u) {
        const auto cu = hn::Set(df, c[(t0 + u) * ldc + j * ldj]);
        for (int v = 0; v < V; ++v) a[u][v] = hn::MulAdd(cu, p[v], a[u][v]);
      }
    }
    for (int u = 0; u < T; ++u)
      for (int v = 0; v < V; ++v)
        hn::StoreU(a[u][v], df, k + static_cast<std::size_t>(t0 + u) * ldk + i + v * N);
  };
  int i = 0;
  for (; i + kRebuildVectors * N <= W; i += kRebuildVectors * N)
    chunk(i, std::integral_constant<int, kRebuildVectors>());
  for (; i + N <= W; i += N) chunk(i, std::integral_constant<int, 1>());
  for (; i < W; ++i)
    for (int u = 0; u < T; ++u) {
      float acc = 0;
      for (int j = 0; j < r; ++j)
        acc += c[(t0 + u) * ldc + j * ldj] * up_t[static_cast<std::size_t>(j) * W + i];
      k[static_cast<std::size_t>(t0 + u) * ldk + i] = acc;
    }
}

// k_t[0, W) = sum_j c_t[j] * P[:, j] for n tokens, with c_t[j] at
// c[t * ldc + j * ldj] (by token or by channel) and rows of stride ldk out:
// four tokens at a time, then one (RebuildTokens), each lane's sum in the
// same order.
void Rebuild(const float* c, int ldc, int ldj, int n, int r, const float* up_t, int W, float* k,
             int ldk) {
  constexpr int kTok = 4;
  int t0 = 0;
  for (; t0 + kTok <= n; t0 += kTok) RebuildTokens<kTok>(c, ldc, ldj, t0, r, up_t, W, k, ldk);
  for (; t0 < n; ++t0) RebuildTokens<1>(c, ldc, ldj, t0, r, up_t, W, k, ldk);
}

// (x1, x2) <- (x1 c - x2 s, x2 c + x1 s) over n pairs.
void RotatePairs(float* x1, float* x2, const float* c, const float* s, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  int i = 0;
  for (; i + N <= n; i += N) {
    const auto a = hn::LoadU(df, x1 + i), b = hn::LoadU(df, x2 + i);
    const auto vc = hn::LoadU(df, c + i), vs = hn::LoadU(df, s + i);
    hn::StoreU(hn::NegMulAdd(b, vs, hn::Mul(a, vc)), df, x1 + i);
    hn::StoreU(hn::MulAdd(a, vs, hn::Mul(b, vc)), df, x2 + i);
  }
  for (; i < n; ++i) {
    const float a = x1[i], b = x2[i];
    x1[i] = a * c[i] - b * s[i];
    x2[i] = b * c[i] + a * s[i];
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#endif  // THINKEYS_KERNELS_LATENT_ROTATION_INL_H_

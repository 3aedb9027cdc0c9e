// Latent keys (design.md section 4, Latent mode): the full-width key rebuilt
// from the cached latent, and the RoPE rotation of pairs. Per-target Highway
// code for decode_attention.cpp.

#if defined(THINKEYS_KERNELS_LATENT_ROTATION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef THINKEYS_KERNELS_LATENT_ROTATION_INL_H_
#undef THINKEYS_KERNELS_LATENT_ROTATION_INL_H_
#else
#define THINKEYS_KERNELS_LATENT_ROTATION_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// k_t[0, W) = sum_j c_t[j] * P[:, j] for n tokens, with c_t[j] at
// c[t * ldc + j * ldj] (by token or by channel) and rows of stride ldk out. Four tokens share each
// loaded chunk of P, and the chunk of k stays in registers across j, so the loop is bound by FMAs,
// not loads.
void Rebuild(const float* c, int ldc, int ldj, int n, int r, const float* up_t, int W, float* k,
             int ldk) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  constexpr int kTok = 4;
  for (int t0 = 0; t0 < n; t0 += kTok) {
    const int tn = std::min(kTok, n - t0);
    int i = 0;
    for (; i + N <= W; i += N) {
      hn::Vec<DF> a[kTok];
      for (int u = 0; u < kTok; ++u) a[u] = hn::Zero(df);
      for (int j = 0; j < r; ++j) {
        const auto p = hn::LoadU(df, up_t + static_cast<std::size_t>(j) * W + i);
        for (int u = 0; u < tn; ++u)
          a[u] = hn::MulAdd(hn::Set(df, c[(t0 + u) * ldc + j * ldj]), p, a[u]);
      }
      for (int u = 0; u < tn; ++u)
        hn::StoreU(a[u], df, k + static_cast<std::size_t>(t0 + u) * ldk + i);
    }
    for (; i < W; ++i)
      for (int u = 0; u < tn; ++u) {
        float acc = 0;
        for (int j = 0; j < r; ++j)
          acc += c[(t0 + u) * ldc + j * ldj] * up_t[static_cast<std::size_t>(j) * W + i];
        k[static_cast<std::size_t>(t0 + u) * ldk + i] = acc;
      }
  }
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

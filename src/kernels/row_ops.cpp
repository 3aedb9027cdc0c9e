// Highway compiles the activations once per instruction set (their exp and
// tanh are most of a step's element-wise time); the rest are short loops.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/row_ops.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include "kernels/row_ops.h"

#include <cmath>

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

void SiluMul(const float* gate, const float* up, int n, float* out) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto one = hn::Set(df, 1.0f);
  int i = 0;
  for (; i + N <= n; i += N) {
    const auto g = hn::LoadU(df, gate + i);
    const auto e = hn::Exp(df, hn::Neg(g));
    hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(df, up + i)), df, out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void GeluTanh(const float* x, int n, float* out) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
  const auto c = hn::Set(df, kC), k = hn::Set(df, 0.044715f), half = hn::Set(df, 0.5f);
  const auto one = hn::Set(df, 1.0f);
  int i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(df, x + i);
    const auto inner = hn::Mul(c, hn::MulAdd(hn::Mul(k, hn::Mul(v, v)), v, v));
    hn::StoreU(hn::Mul(hn::Mul(half, v), hn::Add(one, hn::Tanh(df, inner))), df, out + i);
  }
  for (; i < n; ++i) {
    const float v = x[i];
    out[i] = 0.5f * v * (1.0f + std::tanh(kC * (v + 0.044715f * v * v * v)));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace thinkeys {

HWY_EXPORT(SiluMul);
HWY_EXPORT(GeluTanh);

void silu_mul(const float* gate, const float* up, int n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, n, out);
}

void gelu_tanh(const float* x, int n, float* out) { HWY_DYNAMIC_DISPATCH(GeluTanh)(x, n, out); }

void rms_norm_row(const float* x, const float* w, int n, float eps, float* out) {
  float ss = 0.0f;
  for (int i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void layer_norm_row(const float* x, const float* w, const float* b, int n, float eps, float* out) {
  float mean = 0.0f;
  for (int i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<float>(n);
  float var = 0.0f;
  for (int i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  const float inv = 1.0f / std::sqrt(var / static_cast<float>(n) + eps);
  for (int i = 0; i < n; ++i) out[i] = (x[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
}

void rope_angles(float position, const float* inv_freq, int half, float* cos_out, float* sin_out) {
  for (int i = 0; i < half; ++i) {
    const float a = position * inv_freq[i];
    cos_out[i] = std::cos(a);
    sin_out[i] = std::sin(a);
  }
}

void rope_rotate_half(float* x, int heads, int width, std::size_t stride, const float* cos,
                      const float* sin) {
  const int half = width / 2;
  for (int h = 0; h < heads; ++h) {
    float* v = x + h * stride;
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

void add_to(float* x, const float* y, int n) {
  for (int i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace thinkeys
#endif  // HWY_ONCE

// The causal prefill attention kernel against a double-precision loop that
// writes attention out from its definition, over odd shapes: token counts
// around the kernel's tile of query rows, a prefix already cached (start),
// grouped query heads, thin keys, tiny and odd widths, sliding windows, and
// keys and values read through strides of a larger cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/prefill_attention.h"
#include "util/work_pool.h"

namespace thinkeys {
namespace {

struct Case {
  int tokens, start, heads, key_heads, value_heads, key_width, head_dim, window;
};

void check(const Case& c, WorkPool& pool) {
  const int S = c.start + c.tokens, cap = S + 3;  // rows past S must not be read
  std::mt19937 rng(c.tokens * 131 + c.start * 7 + c.key_width + c.window);
  std::normal_distribution<float> g(0.0f, 1.0f);
  const int w = c.key_width, d = c.head_dim, H = c.heads;
  std::vector<float> q(static_cast<std::size_t>(c.tokens) * H * w);
  for (auto& x : q) x = 2.0f * g(rng);
  // Heads are padded (+2 floats per row) so strides differ from widths.
  const int kld = w + 2, vld = d + 2;
  std::vector<float> k(static_cast<std::size_t>(c.key_heads) * cap * kld, 1e30f);
  std::vector<float> v(static_cast<std::size_t>(c.value_heads) * cap * vld, 1e30f);
  for (int h = 0; h < c.key_heads; ++h)
    for (int s = 0; s < S; ++s)
      for (int i = 0; i < w; ++i) k[(h * cap + s) * kld + i] = g(rng);
  for (int h = 0; h < c.value_heads; ++h)
    for (int s = 0; s < S; ++s)
      for (int j = 0; j < d; ++j) v[(h * cap + s) * vld + j] = g(rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(w));

  const PrefillAttentionShape shape{c.tokens,    c.start,    H,        c.key_heads, c.value_heads,
                                    c.key_width, c.head_dim, c.window, scale};
  std::vector<float> out(static_cast<std::size_t>(c.tokens) * H * d, -7.0f);
  PrefillAttentionArgs a;
  a.q = q.data();
  a.ldq = static_cast<std::size_t>(H) * w;
  a.k = k.data();
  a.k_head_stride = static_cast<std::size_t>(cap) * kld;
  a.k_row_stride = kld;
  a.v = v.data();
  a.v_head_stride = static_cast<std::size_t>(cap) * vld;
  a.v_row_stride = vld;
  a.out = out.data();
  a.ldo = static_cast<std::size_t>(H) * d;
  prefill_attention(shape, a, pool);

  for (int t = 0; t < c.tokens; ++t)
    for (int h = 0; h < H; ++h) {
      const int kh = h / (H / c.key_heads), vh = h / (H / c.value_heads);
      const int p = c.start + t;
      const int lo = c.window > 0 ? std::max(0, p - c.window + 1) : 0;
      std::vector<double> sc;
      double top = -1e300, biggest = 0, vmax = 0;
      for (int s = lo; s <= p; ++s) {
        double dot = 0;
        for (int i = 0; i < w; ++i)
          dot += static_cast<double>(q[(t * H + h) * w + i]) * k[(kh * cap + s) * kld + i];
        sc.push_back(dot * scale);
        top = std::max(top, sc.back());
        biggest = std::max(biggest, std::abs(sc.back()));
      }
      double z = 0;
      for (double& x : sc) z += (x = std::exp(x - top));
      for (int j = 0; j < d; ++j) {
        double want = 0;
        for (int s = lo; s <= p; ++s) {
          const double vs = v[(vh * cap + s) * vld + j];
          want += sc[s - lo] / z * vs;
          vmax = std::max(vmax, std::abs(vs));
        }
        // f32 scores err by ~w ulps of |q||k|, which exp turns into a
        // relative error of the weights; the output mixes values of size vmax.
        const double tol = 1e-5 * (1 + biggest) * (1 + w / 64.0) * vmax + 1e-6;
        const float got = out[(t * H + h) * d + j];
        ASSERT_NEAR(got, want, tol)
            << "tokens " << c.tokens << " start " << c.start << " heads " << H << "/" << c.key_heads
            << "/" << c.value_heads << " w " << w << " d " << d << " window " << c.window
            << " at t " << t << " h " << h << " j " << j;
      }
    }
}

TEST(PrefillAttention, MatchesDefinitionOverOddShapes) {
  WorkPool pool(2);
  for (int tokens : {1, 2, 5, 31, 64, 65, 130})
    for (int start : {0, 9})
      for (int window : {0, 1, 17}) {
        check({tokens, start, 4, 4, 4, 8, 8, window}, pool);
        check({tokens, start, 6, 2, 3, 3, 5, window}, pool);  // grouped, thin, odd
      }
  check({200, 0, 2, 1, 1, 64, 64, 0}, pool);
  check({77, 40, 4, 2, 2, 1, 1, 0}, pool);
  check({129, 3, 3, 3, 3, 130, 67, 50}, pool);
}

TEST(PrefillAttention, ScaleAndSingleKeyAreExact) {
  // The first query sees only key 0, so its output is value 0 exactly,
  // whatever the scores; a wrong mask or normalisation would mix others in.
  WorkPool pool(2);
  const int T = 70, H = 2, w = 4, d = 4;
  std::vector<float> q(T * H * w, 3.0f), k(T * w), v(T * d);
  for (int i = 0; i < T * w; ++i) k[i] = static_cast<float>(i % 13);
  for (int i = 0; i < T * d; ++i) v[i] = static_cast<float>(i);
  std::vector<float> out(T * H * d);
  PrefillAttentionShape s{T, 0, H, 1, 1, w, d, 0, 0.5f};
  PrefillAttentionArgs a{q.data(), H * w, k.data(), 0,          w,
                         v.data(), 0,     d,        out.data(), std::size_t{H} * d};
  prefill_attention(s, a, pool);
  for (int h = 0; h < H; ++h)
    for (int j = 0; j < d; ++j) EXPECT_EQ(out[h * d + j], v[j]);
}

}  // namespace
}  // namespace thinkeys

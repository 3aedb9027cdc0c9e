// Query/key preparation (model/query_keys) against a plain reference written
// from the definitions: rotate-half RoPE on pairs (i, i + w/2) at angle
// position * theta^(-2i / table width), per RopeMode. The same function
// serves prefill, batched decode and training, so this is the one place its
// maths is checked directly; the end-to-end tests check the paths agree.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/layer_ops.h"
#include "model/query_keys.h"
#include "model/rope.h"

namespace thinkeys {
namespace {

constexpr double kTheta = 10000.0;

at::Tensor inv_freq(int width) {
  at::Tensor f = at::empty({width / 2}, at::kFloat);
  for (int i = 0; i < width / 2; ++i) f[i] = static_cast<float>(std::pow(kTheta, -2.0 * i / width));
  return f;
}

ModelConfig config(RopeMode mode, int r, int share = 1) {
  ModelConfig c{.dim = 16,
                .n_layers = 1,
                .n_heads = 4,
                .n_kv_heads = 2,
                .head_dim = 8,
                .positions = PositionKind::Rope,
                .rope_theta = kTheta};
  if (r != c.head_dim || mode != RopeMode::Full || share != 1) {
    c.key_rank = {r};
    c.thin_keys = ThinKeysInfo{"svd", "keys", mode, share};
  }
  return c;
}

const std::vector<float> kPositions = {0, 3, 7, 100, 1000};

// x [N, heads, w] rotated by hand: head h of row n uses angle pos[n] * freq(h, i).
template <class Freq>
std::vector<double> rotate_ref(const at::Tensor& x, Freq freq) {
  const int64_t N = x.size(0), heads = x.size(1), w = x.size(2), half = w / 2;
  at::Tensor xc = x.contiguous();
  const float* p = xc.data_ptr<float>();
  std::vector<double> out(N * heads * w);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double a = kPositions[n] * freq(h, i);
        const int64_t at = (n * heads + h) * w;
        const double x1 = p[at + i], x2 = p[at + i + half];
        out[at + i] = x1 * std::cos(a) - x2 * std::sin(a);
        out[at + i + half] = x2 * std::cos(a) + x1 * std::sin(a);
      }
  return out;
}

// y[n, h, :] = x[n, h, :] maps[h] for x [N, heads, a], maps [heads, a, b].
std::vector<double> map_ref(const std::vector<double>& x, int64_t N, const at::Tensor& maps) {
  const int64_t heads = maps.size(0), a = maps.size(1), b = maps.size(2);
  std::vector<double> y(N * heads * b, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < b; ++j)
        for (int64_t i = 0; i < a; ++i)
          y[(n * heads + h) * b + j] += x[(n * heads + h) * a + i] * maps[h][i][j].item<float>();
  return y;
}

std::vector<double> values(const at::Tensor& x) {
  at::Tensor xc = x.contiguous().to(at::kDouble);
  return {xc.data_ptr<double>(), xc.data_ptr<double>() + xc.numel()};
}

void expect_near(const at::Tensor& got, const std::vector<double>& want, double tol = 2e-5) {
  std::vector<double> g = values(got);
  ASSERT_EQ(g.size(), want.size());
  for (std::size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], tol) << "element " << i;
}

struct Inputs {
  ModelConfig c;
  LayerWeights L;
  RopeAngles angles;
  at::Tensor q, k;  // [N, H, qr], [N, k_rows]
};

Inputs inputs(const ModelConfig& c) {
  at::manual_seed(7);
  Inputs in{c, {}, {}, {}, {}};
  const int64_t N = static_cast<int64_t>(kPositions.size());
  in.angles = rope_angles(c, inv_freq(c.head_dim), at::tensor(kPositions));
  in.q = at::randn({N, c.n_heads, c.q_rows_per_head(0)});
  in.k = at::randn({N, c.k_rows(0)});
  return in;
}

TEST(QueryKeys, ManyRowsRotateLikeTheDefinitionAndLikeTheAutogradPath) {
  // Prefill-sized inputs (more rows than a decode batch) take rotate()'s
  // pooled path; a view of a wider projection, as split_qkv hands it over.
  at::manual_seed(3);
  const int64_t N = 40, heads = 3, w = 8;
  const at::Tensor wide = at::randn({N, heads * w + 5});
  const at::Tensor x = wide.narrow(1, 0, heads * w).view({N, heads, w});
  const at::Tensor pos = at::arange(0, N, at::kFloat);
  auto [cos, sin] = rope_cos_sin(pos, inv_freq(w));
  const at::Tensor got = rotate(x, cos, sin);
  std::vector<double> want(N * heads * w);
  const at::Tensor xc = x.contiguous();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < w / 2; ++i) {
        const double a = n * std::pow(kTheta, -2.0 * i / w);
        const double x1 = xc[n][h][i].item<float>(), x2 = xc[n][h][i + w / 2].item<float>();
        want[(n * heads + h) * w + i] = x1 * std::cos(a) - x2 * std::sin(a);
        want[(n * heads + h) * w + i + w / 2] = x2 * std::cos(a) + x1 * std::sin(a);
      }
  expect_near(got, want);
  // The libtorch ops (autograd keeps them) do the same products and sums.
  const at::Tensor slow = rotate(x.clone().requires_grad_(true), cos, sin).detach();
  EXPECT_TRUE(at::equal(got, slow));
}

TEST(QueryKeys, FullModeRotatesThinKeysWithTheHeadDimTable) {
  Inputs in = inputs(config(RopeMode::Full, 4));
  QueryKeys qk = prepare_query_keys(in.c, in.L, 0, in.q, in.k, in.angles);
  // The first r/2 frequencies of the head_dim table.
  auto freq = [](int64_t, int64_t i) { return std::pow(kTheta, -2.0 * i / 8); };
  expect_near(qk.q, rotate_ref(in.q, freq));
  expect_near(qk.k, rotate_ref(in.k.view({5, 2, 4}), freq));
}

TEST(QueryKeys, FullModeUsesTheLayersKeyWidthTable) {
  Inputs in = inputs(config(RopeMode::Full, 4));
  in.L.rope_inv_freq = inv_freq(4);
  QueryKeys qk = prepare_query_keys(in.c, in.L, 0, in.q, in.k, in.angles);
  auto freq = [](int64_t, int64_t i) { return std::pow(kTheta, -2.0 * i / 4); };
  expect_near(qk.q, rotate_ref(in.q, freq));
  expect_near(qk.k, rotate_ref(in.k.view({5, 2, 4}), freq));
}

TEST(QueryKeys, WithoutRopeNothingRotates) {
  ModelConfig c = config(RopeMode::Full, 8);
  c.positions = PositionKind::Learned;
  Inputs in = inputs(c);
  QueryKeys qk = prepare_query_keys(in.c, in.L, 0, in.q, in.k, in.angles);
  EXPECT_TRUE(at::equal(qk.q, in.q));
  EXPECT_TRUE(at::equal(qk.k, in.k.view({5, 2, 8})));
}

TEST(QueryKeys, PairsModeRotatesEachKvHeadsKeptPlanes) {
  Inputs in = inputs(config(RopeMode::Pairs, 4));
  const std::vector<std::vector<int>> planes = {{1, 3}, {0, 2}};
  in.L.rope_inv_freq = at::empty({2, 2}, at::kFloat);
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 2; ++j)
      in.L.rope_inv_freq[h][j] = static_cast<float>(std::pow(kTheta, -2.0 * planes[h][j] / 8));
  QueryKeys qk = prepare_query_keys(in.c, in.L, 0, in.q, in.k, in.angles);
  // Query head h reads KV head h / 2 and rotates with its planes.
  expect_near(qk.q, rotate_ref(in.q, [&](int64_t h, int64_t i) {
                return std::pow(kTheta, -2.0 * planes[h / 2][i] / 8);
              }));
  expect_near(qk.k, rotate_ref(in.k.view({5, 2, 4}), [&](int64_t h, int64_t i) {
                return std::pow(kTheta, -2.0 * planes[h][i] / 8);
              }));
}

TEST(QueryKeys, PostModeRotatesAtFullWidthThenMapsDown) {
  // Two KV heads share one cached key head: its map reads both rotated heads.
  Inputs in = inputs(config(RopeMode::Post, 3, 2));
  in.L.k_down = at::randn({1, 16, 3});
  in.L.q_down = at::randn({4, 8, 3});
  QueryKeys qk = prepare_query_keys(in.c, in.L, 0, in.q, in.k, in.angles);
  auto freq = [](int64_t, int64_t i) { return std::pow(kTheta, -2.0 * i / 8); };
  expect_near(qk.q, map_ref(rotate_ref(in.q, freq), 5, in.L.q_down), 1e-4);
  // [N, 2 KV heads, 8] rotated is [N, 1 key head, 16] read as one row.
  expect_near(qk.k, map_ref(rotate_ref(in.k.view({5, 2, 8}), freq), 5, in.L.k_down), 1e-4);
  EXPECT_EQ(qk.k.sizes(), (std::vector<int64_t>{5, 1, 3}));
}

TEST(QueryKeys, LatentModeRotatesQueriesAndCachesTheLatentAsItIs) {
  Inputs in = inputs(config(RopeMode::Latent, 4, 2));
  in.L.k_up = at::randn({1, 16, 4});  // P: [key heads, share * d, r]
  QueryKeys qk = prepare_query_keys(in.c, in.L, 0, in.q, in.k, in.angles);
  auto freq = [](int64_t, int64_t i) { return std::pow(kTheta, -2.0 * i / 8); };
  expect_near(qk.q, rotate_ref(in.q, freq));
  EXPECT_TRUE(at::equal(qk.k, in.k.view({5, 1, 4})));

  // Rebuilt keys: k = P c (share * d wide: KV heads 0 and 1), each rotated.
  at::Tensor K = latent_keys(in.c, in.L, qk.k, in.angles);
  std::vector<double> rebuilt = map_ref(values(qk.k), 5, in.L.k_up.transpose(1, 2));
  at::Tensor as_heads = at::tensor(rebuilt, at::kDouble).to(at::kFloat).view({5, 2, 8});
  expect_near(K, rotate_ref(as_heads, freq), 1e-4);
}

TEST(QueryKeys, LeadingBatchDimensionsAreIndependentRows) {
  // Training passes [B, T, ...]; each batch row must equal its own [T, ...] call.
  Inputs in = inputs(config(RopeMode::Full, 4));
  at::Tensor q2 = at::stack({in.q, in.q * 2}), k2 = at::stack({in.k, in.k * 3});
  QueryKeys both = prepare_query_keys(in.c, in.L, 0, q2, k2, in.angles);
  for (int b = 0; b < 2; ++b) {
    QueryKeys one = prepare_query_keys(in.c, in.L, 0, q2[b], k2[b], in.angles);
    EXPECT_TRUE(at::allclose(both.q[b], one.q));
    EXPECT_TRUE(at::allclose(both.k[b], one.k));
  }
}

TEST(QueryKeys, SplitQkvCutsTheFusedProjectionInOrder) {
  ModelConfig c = config(RopeMode::Full, 4);
  // Row n, column j holds 1000 n + j, so every part names where it came from.
  const int64_t width = 4 * 4 + 2 * 4 + 2 * 8;
  at::Tensor qkv = at::arange(0, width, at::kFloat).unsqueeze(0) +
                   at::arange(0, 3, at::kFloat).unsqueeze(1) * 1000;
  QKV p = split_qkv(c, 0, qkv);
  EXPECT_EQ(p.q.sizes(), (std::vector<int64_t>{3, 4, 4}));
  EXPECT_EQ(p.k.sizes(), (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(p.v.sizes(), (std::vector<int64_t>{3, 2, 8}));
  EXPECT_EQ(p.q[2][3][1].item<float>(), 2000 + 3 * 4 + 1);
  EXPECT_EQ(p.k[1][0].item<float>(), 1000 + 16);
  EXPECT_EQ(p.v[0][1][7].item<float>(), 16 + 8 + 8 + 7);
}

}  // namespace
}  // namespace thinkeys

// Key compression against mathematical identities: full rank reproduces the
// original, the calibrated score error is the Eckart-Young optimum (computed
// here independently from the singular values of the score matrix itself),
// errors shrink with rank, and the cache really is smaller.
#include <gtest/gtest.h>

#include "compress/calibration.h"
#include "compress/compressor.h"
#include "compress/kq_svd.h"
#include "io/model_loader.h"
#include "model/kv_cache.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_support.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::vector<int32_t> some_tokens(int n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t = {1};
  while (static_cast<int>(t.size()) < n) t.push_back(static_cast<int32_t>(3 + rng() % (vocab - 3)));
  return t;
}

at::Tensor logits_of(const Model& m, const std::vector<int32_t>& tokens) {
  KVCache cache(m.config, static_cast<int>(tokens.size()));
  return forward(m, tokens, cache);
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

ModelConfig tiny_gpt2() {
  ModelConfig c = gpt2_small_config();
  c.vocab_size = 97;
  c.dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 12;
  c.hidden_dim = 96;
  c.max_positions = 128;
  return c;
}

CompressOptions options(const std::string& method, std::optional<RopeMode> rope, int rank, int share = 1) {
  CompressOptions o;
  o.method = method;
  o.rope = rope;
  o.share = share;
  o.ranks.key_rank = rank;
  o.calibration.show_progress = false;
  o.calibration.ctx = 64;
  return o;
}

class Stories : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = test::shared_file("models/stories260K/stories260K.bin");
    if (!p) GTEST_SKIP() << "shared data not found; set THINKEYS_SHARED";
    model_ = load_model(*p);
    calib_ = some_tokens(256, 512, 11);
    // Real text would be better calibration; random ids exercise the same algebra.
    probe_ = some_tokens(40, 512, 12);
  }
  Model model_;
  std::vector<int32_t> calib_, probe_;
};

TEST_F(Stories, FullRankReproducesTheOriginalForEveryMethodAndRopeMode) {
  at::Tensor ref = logits_of(model_, probe_);
  for (const char* method : {"svd", "kqsvd"})
    for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs}) {
      Model c = compress_model(model_, options(method, mode, 8), calib_);
      EXPECT_LE(rel_err(logits_of(c, probe_), ref), 1e-4) << method << " " << to_string(mode);
    }
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent}) {  // one latent per layer: 4 heads x 8
    Model c = compress_model(model_, options("kqsvd", mode, 32, 4), calib_);
    EXPECT_LE(rel_err(logits_of(c, probe_), ref), 1e-4) << "share=layer " << to_string(mode);
  }
}

TEST_F(Stories, CacheShrinksAndMatchesTheFormula) {
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs}) {
    Model c = compress_model(model_, options("kqsvd", mode, 2), calib_);
    KVCache cache(c.config, 100);
    // 5 layers x 100 tokens x (4 key heads x 2 + 4 value heads x 8) floats.
    EXPECT_EQ(cache.allocated_bytes(), int64_t{5} * 100 * (4 * 2 + 4 * 8) * 4) << to_string(mode);
    KVCache full(model_.config, 100);
    EXPECT_EQ(full.allocated_bytes(), int64_t{5} * 100 * (4 * 8 + 4 * 8) * 4);
  }
  Model shared = compress_model(model_, options("kqsvd", RopeMode::Latent, 8, 4), calib_);
  KVCache cache(shared.config, 10);
  EXPECT_EQ(cache.allocated_bytes(), int64_t{5} * 10 * (1 * 8 + 4 * 8) * 4);
}

TEST_F(Stories, QueryHeadsOfAGroupShareTheirKvHeadsMap) {
  Model c = compress_model(model_, options("kqsvd", RopeMode::Post, 4), calib_);
  for (const auto& L : c.weights.layers)
    for (int g = 0; g < 4; ++g) {
      EXPECT_TRUE(at::equal(L.q_down[2 * g], L.q_down[2 * g + 1]));
      if (g > 0) EXPECT_FALSE(at::equal(L.q_down[2 * g], L.q_down[0]));
    }
}

TEST_F(Stories, KqSvdScoreErrorIsTheEckartYoungOptimumAndBeatsWeightSvd) {
  // Collect layer 2's pre-rotation queries and keys on the calibration tokens.
  const int layer = 2, d = 8, G = 2;
  std::vector<at::Tensor> qs, ks;
  QKObserver obs = [&](int l, const at::Tensor& q, const at::Tensor& k, const at::Tensor&, const at::Tensor&) {
    if (l == layer) {
      qs.push_back(q.to(at::kDouble));
      ks.push_back(k.to(at::kDouble));
    }
  };
  KVCache cache(model_.config, static_cast<int>(calib_.size()));
  forward(model_, calib_, cache, Logits::Last, &obs);
  at::Tensor Q = qs[0], K = ks[0];  // [T, 8, 8], [T, 4, 8]
  CalibrationOptions co;
  co.ctx = static_cast<int>(calib_.size());
  co.show_progress = false;
  CalibrationStats st = calibrate(model_, calib_, co);

  for (int g = 0; g < 4; ++g) {
    at::Tensor Kg = K.select(1, g);                                          // [T, d]
    at::Tensor Qg = at::cat({Q.select(1, g * G), Q.select(1, g * G + 1)}, 0);  // [G*T, d]
    at::Tensor S = at::matmul(Qg, Kg.t());
    at::Tensor sv = at::linalg_svdvals(S);  // independent: singular values of the score matrix
    const double total = S.pow(2).sum().item<double>();
    KQFactorization f = kq_factorize(st.key_pre[layer][g], st.query_pre[layer][g]);
    at::Tensor Wk = model_.weights.layers[layer].wk.narrow(0, g * d, d);
    double prev = 1e300;
    for (int r = 1; r <= d; ++r) {
      KeyMaps m = kq_maps(f, r);
      double err = (at::matmul(at::matmul(Qg, m.B), at::matmul(Kg, m.A).t()) - S).pow(2).sum().item<double>();
      double bound = sv.narrow(0, r, sv.size(0) - r).pow(2).sum().item<double>();
      EXPECT_NEAR(err / total, bound / total, 1e-4) << "head " << g << " r " << r;
      EXPECT_LE(err, prev * (1 + 1e-9) + 1e-12 * total) << "error grew with rank";
      prev = err;
      KeyMaps w = weight_svd_maps(Wk, r);
      double werr = (at::matmul(at::matmul(Qg, w.B), at::matmul(Kg, w.A).t()) - S).pow(2).sum().item<double>();
      EXPECT_GE(werr, err * (1 - 1e-6) - 1e-12 * total) << "weight SVD beat the optimum at r " << r;
    }
    EXPECT_LT(prev / total, 1e-10);  // full rank is exact
  }
}

TEST_F(Stories, ErrorDoesNotGrowWithRank) {
  at::Tensor ref = at::log_softmax(logits_of(model_, calib_).to(at::kDouble), -1);
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent}) {
    double prev = 1e300;
    for (int r : {1, 2, 4, 6, 8}) {
      Model c = compress_model(model_, options("kqsvd", mode, r), calib_);
      at::Tensor lp = at::log_softmax(logits_of(c, calib_).to(at::kDouble), -1);
      double kl = (ref.exp() * (ref - lp)).sum(-1).mean().item<double>();
      EXPECT_LE(kl, prev * 1.05 + 1e-9) << to_string(mode) << " r=" << r;
      prev = kl;
    }
    EXPECT_LT(prev, 1e-9);
  }
}

TEST_F(Stories, CompressedModelsRoundTripThroughDisk) {
  test::TempDir dir;
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs}) {
    Model c = compress_model(model_, options("kqsvd", mode, 4), calib_);
    save_model(c, dir / "m", DType::F32);
    Model back = load_model(dir / "m");
    ASSERT_TRUE(back.config.thin_keys.has_value());
    EXPECT_EQ(back.config.thin_keys->rope, mode);
    EXPECT_EQ(back.config.key_rank, c.config.key_rank);
    EXPECT_LE(rel_err(logits_of(back, probe_), logits_of(c, probe_)), 1e-6) << to_string(mode);
  }
}

TEST_F(Stories, BadRequestsAreRefusedClearly) {
  auto expect_error = [&](CompressOptions o, std::vector<int32_t> calib, const std::string& needle) {
    try {
      compress_model(model_, o, calib);
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(options("kqsvd", RopeMode::Post, 9), calib_, "exceeds the key width");
  auto tiny = options("kqsvd", RopeMode::Post, 0);
  tiny.ranks.key_ratio = 0.01;
  expect_error(tiny, calib_, "leaves no key dimension");
  expect_error(options("kqsvd", RopeMode::Post, 4), {}, "calibration");
  expect_error(options("kqsvd", std::nullopt, 4), calib_, "RoPE");
  expect_error(options("kqsvd", RopeMode::Pairs, 3), calib_, "even");
  expect_error(options("pca", RopeMode::Post, 4), calib_, "unknown method");
  EXPECT_THROW(parse_rope_mode("sideways"), Error);
  Model once = compress_model(model_, options("svd", RopeMode::Latent, 4), {});
  try {
    compress_model(once, options("svd", RopeMode::Latent, 2), {});
    ADD_FAILURE() << "compressing twice must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already"), std::string::npos);
  }
}

TEST(CompressGpt2, AbsorbedKeysAreExactAtFullRankAndThin) {
  Model m = random_model(tiny_gpt2(), 5, 0.2);
  auto calib = some_tokens(200, 97, 21);
  auto probe = some_tokens(30, 97, 22);
  at::Tensor ref = logits_of(m, probe);
  for (const char* method : {"svd", "kqsvd"}) {
    Model full = compress_model(m, options(method, std::nullopt, 12), calib);
    EXPECT_LE(rel_err(logits_of(full, probe), ref), 1e-4) << method;
    Model thin = compress_model(m, options(method, std::nullopt, 3), calib);
    EXPECT_EQ(thin.weights.layers[0].wk.size(0), 4 * 3);  // absorbed: 3 rows per head
    EXPECT_EQ(thin.weights.layers[0].wq.size(0), 4 * 3);
    KVCache cache(thin.config, 10);
    EXPECT_EQ(cache.allocated_bytes(), int64_t{2} * 10 * (4 * 3 + 4 * 12) * 4);
  }
  Model layer = compress_model(m, options("kqsvd", std::nullopt, 48, 4), calib);
  EXPECT_LE(rel_err(logits_of(layer, probe), ref), 1e-4) << "one latent per layer at full rank";
  test::TempDir dir;
  Model thin = compress_model(m, options("kqsvd", std::nullopt, 5, 2), calib);
  save_model(thin, dir / "g", DType::F32);
  EXPECT_LE(rel_err(logits_of(load_model(dir / "g"), probe), logits_of(thin, probe)), 1e-6);
}

TEST(CompressGpt2, QueriesTargetKeepsTheCache) {
  Model m = random_model(tiny_gpt2(), 6, 0.2);
  auto o = options("svd", std::nullopt, 12);
  o.target = "queries";
  auto probe = some_tokens(20, 97, 3);
  Model full = compress_model(m, o, {});
  EXPECT_LE(rel_err(logits_of(full, probe), logits_of(m, probe)), 1e-4);
  o.ranks.key_rank = 4;
  Model q = compress_model(m, o, {});
  EXPECT_EQ(KVCache(q.config, 10).allocated_bytes(), KVCache(m.config, 10).allocated_bytes());
  EXPECT_GT(rel_err(logits_of(q, probe), logits_of(m, probe)), 1e-4);
}

}  // namespace
}  // namespace thinkeys

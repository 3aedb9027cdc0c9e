// Key compression against mathematical identities: full rank reproduces the
// original, the calibrated score error is the Eckart-Young optimum (computed
// here independently from the singular values of the score matrices
// themselves) at every rank, per head, after RoPE and for shared latents; on
// held-out text KL shrinks with rank; and the cache really is smaller. All but
// the held-out KL run on random weights and need no shared data.
#include <gtest/gtest.h>

#include "checkpoint/model_loader.h"
#include "compress/calibration.h"
#include "compress/compressor.h"
#include "compress/kq_svd.h"
#include "model/kv_cache.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"
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

ModelConfig tiny_gpt2() { return gpt2_config({97, 48, 2, 4, 4, 12, 96, 128}); }

CompressOptions options(const std::string& method, std::optional<RopeMode> rope, int rank,
                        int share = 1) {
  CompressOptions o;
  o.method = parse_compress_method(method);
  o.rope = rope;
  o.share = share;
  o.ranks.key_rank = rank;
  o.calibration.show_progress = false;
  o.calibration.ctx = 64;
  return o;
}

// stories260K's shape (5 layers, width 64, 8 query heads over 4 KV heads of 8,
// RoPE) with random weights: the algebra below holds for any weights, so these
// tests need no checkpoint.
ModelConfig stories_shaped() { return llama_config({512, 64, 5, 8, 4, 8, 172, 512}); }

class RandomLlama : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = random_model(stories_shaped(), 3, 0.15);
    calib_ = some_tokens(256, 512, 11);
    probe_ = some_tokens(40, 512, 12);
  }
  Model model_;
  std::vector<int32_t> calib_, probe_;
};

TEST_F(RandomLlama, FullRankReproducesTheOriginalForEveryMethodAndRopeMode) {
  at::Tensor ref = logits_of(model_, probe_);
  for (const char* method : {"svd", "kqsvd", "keypca"})
    for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs}) {
      Model c = compress_model(model_, options(method, mode, 8), calib_);
      EXPECT_LE(rel_err(logits_of(c, probe_), ref), 1e-4) << method << " " << to_string(mode);
    }
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent}) {  // one latent per layer: 4 heads x 8
    Model c = compress_model(model_, options("kqsvd", mode, 32, 4), calib_);
    EXPECT_LE(rel_err(logits_of(c, probe_), ref), 1e-4) << "share=layer " << to_string(mode);
  }
}

TEST_F(RandomLlama, CacheShrinksAndMatchesTheFormula) {
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

TEST_F(RandomLlama, QueryHeadsOfAGroupShareTheirKvHeadsMap) {
  Model c = compress_model(model_, options("kqsvd", RopeMode::Post, 4), calib_);
  for (const auto& L : c.weights.layers)
    for (int g = 0; g < 4; ++g) {
      EXPECT_TRUE(at::equal(L.q_down[2 * g], L.q_down[2 * g + 1]));
      if (g > 0) EXPECT_FALSE(at::equal(L.q_down[2 * g], L.q_down[0]));
    }
}

struct LayerQK {
  at::Tensor q, k, q_rot, k_rot;  // [T, H, d], [T, Hkv, d], double
};

LayerQK observe_layer(const Model& m, const std::vector<int32_t>& tokens, int layer) {
  LayerQK out;
  QKObserver obs = [&](int l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& qr,
                       const at::Tensor& kr) {
    if (l != layer) return;
    out.q = q.to(at::kDouble);
    out.k = k.to(at::kDouble);
    out.q_rot = qr.to(at::kDouble);
    out.k_rot = kr.to(at::kDouble);
  };
  KVCache cache(m.config, static_cast<int>(tokens.size()));
  forward(m, tokens, cache, Logits::Last, &obs);
  return out;
}

TEST_F(RandomLlama, KqSvdScoreErrorIsTheEckartYoungOptimumAndBeatsWeightSvd) {
  // Layer 2's pre-rotation queries and keys on the calibration tokens.
  const int layer = 2, d = 8, G = 2;
  LayerQK qk = observe_layer(model_, calib_, layer);
  at::Tensor Q = qk.q, K = qk.k;  // [T, 8, 8], [T, 4, 8]
  CalibrationOptions co;
  co.ctx = static_cast<int>(calib_.size());
  co.show_progress = false;
  CalibrationStats st = calibrate(model_, calib_, co);

  for (int g = 0; g < 4; ++g) {
    at::Tensor Kg = K.select(1, g);                                            // [T, d]
    at::Tensor Qg = at::cat({Q.select(1, g * G), Q.select(1, g * G + 1)}, 0);  // [G*T, d]
    at::Tensor S = at::matmul(Qg, Kg.t());
    at::Tensor sv = at::linalg_svdvals(S);  // independent: singular values of the score matrix
    const double total = S.pow(2).sum().item<double>();
    KQFactorization f = kq_factorize(st.key_pre[layer][g], st.query_pre[layer][g]);
    at::Tensor Wk = model_.weights.layers[layer].wk.narrow(0, g * d, d);
    double prev = 1e300;
    for (int r = 1; r <= d; ++r) {
      KeyMaps m = kq_maps(f, r);
      double err = (at::matmul(at::matmul(Qg, m.B), at::matmul(Kg, m.A).t()) - S)
                       .pow(2)
                       .sum()
                       .item<double>();
      double bound = sv.narrow(0, r, sv.size(0) - r).pow(2).sum().item<double>();
      EXPECT_NEAR(err / total, bound / total, 1e-4) << "head " << g << " r " << r;
      EXPECT_LE(err, prev * (1 + 1e-9) + 1e-12 * total) << "error grew with rank";
      prev = err;
      KeyMaps w = weight_svd_maps(Wk, r);
      double werr = (at::matmul(at::matmul(Qg, w.B), at::matmul(Kg, w.A).t()) - S)
                        .pow(2)
                        .sum()
                        .item<double>();
      EXPECT_GE(werr, err * (1 - 1e-6) - 1e-12 * total) << "weight SVD beat the optimum at r " << r;
    }
    EXPECT_LT(prev / total, 1e-10);  // full rank is exact
  }
}

// Post mode (maps applied after RoPE) and one key latent shared by `share` KV
// heads, at thin ranks, read back from the compressed model itself. For a key
// group, stack the score matrices Q_h K_j^T of every query head h over KV head
// j of the group: the compressed scores (B_h^T q_h) . (A^T [k_j...]) form a
// matrix of rank <= r, so by Eckart-Young their squared error is at least the
// tail energy of the stacked matrix's singular values, and KQ-SVD (calibrated on
// exactly these tokens) must reach it. Weight SVD may not do better.
TEST_F(RandomLlama, PostAndSharedLatentReachTheEckartYoungOptimumAtThinRanks) {
  const int d = 8, G = 2, Hkv = 4, T = static_cast<int>(calib_.size());
  const LayerQK observed[] = {observe_layer(model_, calib_, 0), observe_layer(model_, calib_, 3)};
  for (int share : {1, 2, 4}) {
    const int nk = Hkv / share;
    for (int r : {1, 3, share * d / 2, share * d - 1, share * d}) {
      auto o = options("kqsvd", RopeMode::Post, r, share);
      o.calibration.ctx = T;  // one window, as observed above
      Model c = compress_model(model_, o, calib_);
      Model w = compress_model(model_, options("svd", RopeMode::Post, r, share), {});
      for (int which : {0, 1}) {
        const int layer = which == 0 ? 0 : 3;
        const LayerQK& qk = observed[which];
        const auto& L = c.weights.layers[layer];
        const auto& Lw = w.weights.layers[layer];
        ASSERT_EQ(L.k_down.size(0), nk);
        ASSERT_EQ(L.k_down.size(1), share * d);
        ASSERT_EQ(L.k_down.size(2), r);
        for (int kh = 0; kh < nk; ++kh) {
          at::Tensor Kcat = qk.k_rot.narrow(1, kh * share, share).reshape({T, share * d});
          std::vector<at::Tensor> exact, kq, ws;
          for (int j = kh * share; j < (kh + 1) * share; ++j)
            for (int h = j * G; h < (j + 1) * G; ++h) {
              at::Tensor Qh = qk.q_rot.select(1, h);  // [T, d]
              exact.push_back(at::matmul(Qh, qk.k_rot.select(1, j).t()));
              auto approx = [&](const LayerWeights& LW) {
                at::Tensor B = LW.q_down[h].to(at::kDouble), A = LW.k_down[kh].to(at::kDouble);
                return at::matmul(at::matmul(Qh, B), at::matmul(Kcat, A).t());
              };
              kq.push_back(approx(L));
              ws.push_back(approx(Lw));
            }
          at::Tensor S = at::cat(exact, 0);  // [share*G*T, T]
          at::Tensor sv = at::linalg_svdvals(S);
          const double total = S.pow(2).sum().item<double>();
          const double bound =
              r < sv.size(0) ? sv.narrow(0, r, sv.size(0) - r).pow(2).sum().item<double>() : 0.0;
          const double err = (at::cat(kq, 0) - S).pow(2).sum().item<double>();
          const double werr = (at::cat(ws, 0) - S).pow(2).sum().item<double>();
          SCOPED_TRACE("layer " + std::to_string(layer) + " share " + std::to_string(share) +
                       " r " + std::to_string(r) + " key group " + std::to_string(kh));
          EXPECT_NEAR(err / total, bound / total, 1e-4);
          EXPECT_GE(werr / total, bound / total - 1e-4);
          if (r < share * d) EXPECT_GT(bound / total, 1e-6) << "a thin rank must discard something";
        }
      }
    }
  }
}

// KL on text the calibration never saw: real model, real text, calibrated on
// one part of the validation file and scored on a later part.
class Stories : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = test::shared_file("models/stories260K/stories260K.bin");
    if (!p) THINKEYS_MISSING_SHARED("models/stories260K/stories260K.bin");
    auto text = test::shared_file("data/tinystories/tinystories_val_head.txt");
    if (!text) THINKEYS_MISSING_SHARED("data/tinystories/tinystories_val_head.txt");
    model_ = load_model(*p);
    auto tok = load_tokenizer(*p, model_.config.vocab_size);
    std::vector<int32_t> ids = tok->encode(test::read_bytes(*text).substr(0, 60000));
    ASSERT_GT(ids.size(), 2000u);
    calib_.assign(ids.begin(), ids.begin() + 1024);
    held_out_.assign(ids.end() - 256, ids.end());
  }
  Model model_;
  std::vector<int32_t> calib_, held_out_;
};

TEST_F(Stories, HeldOutKlFallsWithRankToZeroAtFullRank) {
  at::Tensor ref = at::log_softmax(logits_of(model_, held_out_).to(at::kDouble), -1);
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent}) {
    double prev = 1e300, first = 0;
    for (int r : {1, 2, 4, 6, 8}) {
      Model c = compress_model(model_, options("kqsvd", mode, r), calib_);
      at::Tensor lp = at::log_softmax(logits_of(c, held_out_).to(at::kDouble), -1);
      double kl = (ref.exp() * (ref - lp)).sum(-1).mean().item<double>();
      if (r == 1) first = kl;
      EXPECT_LE(kl, prev * 1.05 + 1e-9) << to_string(mode) << " r=" << r;
      prev = kl;
    }
    EXPECT_GT(first, 1e-3) << "rank 1 must cost something, or the check above is empty";
    EXPECT_LT(prev, 1e-9);
  }
}

TEST_F(RandomLlama, CompressedModelsRoundTripThroughDisk) {
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

TEST_F(RandomLlama, BadRequestsAreRefusedClearly) {
  auto expect_error = [&](CompressOptions o, std::vector<int32_t> calib,
                          const std::string& needle) {
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
  try {
    parse_compress_method("pca");
    ADD_FAILURE() << "expected an error mentioning unknown method";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown method"), std::string::npos) << e.what();
  }
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
  for (const char* method : {"svd", "kqsvd", "keypca"}) {
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

// T is W's best rank-r approximation. Eckart-Young says what that is without
// redoing the SVD the implementation does: rank r, the top r singular values
// kept, and a squared Frobenius error equal to the sum of the dropped singular
// values squared (which only the truncated SVD reaches when s_r > s_r+1).
void expect_best_rank_approximation(const at::Tensor& W, const at::Tensor& T, int r) {
  const at::Tensor s = at::linalg_svdvals(W), t = at::linalg_svdvals(T);
  const int64_t n = s.size(0);
  ASSERT_GT(s[r - 1].item<double>() - s[r].item<double>(), 1e-3 * s[0].item<double>());
  EXPECT_LE((t.narrow(0, 0, r) - s.narrow(0, 0, r)).abs().max().item<double>(),
            1e-5 * s[0].item<double>());
  EXPECT_LE(t.narrow(0, r, n - r).max().item<double>(), 1e-5 * s[0].item<double>());
  const double tail = s.narrow(0, r, n - r).pow(2).sum().item<double>();
  EXPECT_NEAR((W - T).pow(2).sum().item<double>(), tail, 1e-4 * tail);
}

// Queries-only truncation replaces each head's W_Q (d x D) by its best rank-r
// approximation (Eckart-Young, as above).
TEST(CompressGpt2, QueriesTargetKeepsTheCacheAndTruncatesEachHeadOptimally) {
  Model m = random_model(tiny_gpt2(), 6, 0.2);
  auto o = options("svd", std::nullopt, 12);
  o.target = CompressTarget::Queries;
  auto probe = some_tokens(20, 97, 3);
  Model full = compress_model(m, o, {});
  EXPECT_LE(rel_err(logits_of(full, probe), logits_of(m, probe)), 1e-4);
  const int r = 4, d = 12;
  o.ranks.key_rank = r;
  Model q = compress_model(m, o, {});
  EXPECT_EQ(KVCache(q.config, 10).allocated_bytes(), KVCache(m.config, 10).allocated_bytes());
  for (size_t l = 0; l < m.weights.layers.size(); ++l) {
    const auto& A = m.weights.layers[l];
    const auto& B = q.weights.layers[l];
    EXPECT_TRUE(at::equal(A.wk, B.wk)) << "layer " << l;
    EXPECT_TRUE(at::equal(A.wv, B.wv)) << "layer " << l;
    for (int h = 0; h < 4; ++h) {
      at::Tensor W = A.wq.narrow(0, h * d, d).to(at::kDouble);
      at::Tensor T = B.wq.narrow(0, h * d, d).to(at::kDouble);
      SCOPED_TRACE("layer " + std::to_string(l) + " head " + std::to_string(h));
      ASSERT_NO_FATAL_FAILURE(expect_best_rank_approximation(W, T, r));
    }
  }
  EXPECT_GT(rel_err(logits_of(q, probe), logits_of(m, probe)), 1e-4);
}

// Per-layer query truncation (share = all 4 KV heads of a layer): the layer's
// stacked W_Q (4 heads x 12 rows = 48 x 48) becomes its best rank-r
// approximation, by Eckart-Young as above, and no longer per head: the
// stacked matrix has rank r while each head's block may keep up to r.
TEST(CompressGpt2, QueriesTargetPerLayerTruncatesTheStackedHeadsOptimally) {
  Model m = random_model(tiny_gpt2(), 7, 0.2);
  auto o = options("svd", std::nullopt, 0, 4);
  o.ranks.key_ratio = 0.25;  // 0.25 x 48 rows = rank 12
  o.target = CompressTarget::Queries;
  const int r = 12;
  Model q = compress_model(m, o, {});
  for (size_t l = 0; l < m.weights.layers.size(); ++l) {
    at::Tensor W = m.weights.layers[l].wq.to(at::kDouble);
    at::Tensor T = q.weights.layers[l].wq.to(at::kDouble);
    SCOPED_TRACE("layer " + std::to_string(l));
    ASSERT_NO_FATAL_FAILURE(expect_best_rank_approximation(W, T, r));
  }
  o.ranks.key_ratio = 0;
  o.ranks.key_rank = 49;
  EXPECT_THROW(compress_model(m, o, {}), Error);
}

}  // namespace
}  // namespace thinkeys

// Fidelity and spectrum against values computed here by other means: the
// first layer's score error from the weights alone, identities (a model against
// itself, full rank), and singular values planted in the weights by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "compress/compressor.h"
#include "eval/fidelity.h"
#include "eval/perplexity.h"
#include "eval/spectrum.h"
#include "model/kv_cache.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_support.h"
#include "util/error.h"

namespace thinkeys {
namespace {

ModelConfig tiny_gpt2() { return gpt2_config({61, 32, 2, 4, 4, 8, 64, 64}); }

std::vector<int32_t> some_tokens(int n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t;
  while (static_cast<int>(t.size()) < n) t.push_back(static_cast<int32_t>(rng() % vocab));
  return t;
}

CompressOptions svd_keys(int rank) {
  CompressOptions o;
  o.method = CompressMethod::Svd;
  o.ranks.key_rank = rank;
  return o;
}

TEST(Fidelity, AModelAgainstItselfHasNoError) {
  Model m = random_model(tiny_gpt2(), 1, 0.3);
  auto tokens = some_tokens(50, 61, 2);
  FidelityReport r = measure_fidelity(m, m, tokens, 16, false);
  EXPECT_EQ(r.tokens, 50);
  EXPECT_EQ(r.windows, 4);  // 16 + 16 + 16 + 2
  ASSERT_EQ(r.layers.size(), 2u);
  for (const auto& l : r.layers) {
    EXPECT_EQ(l.scores, 0.0);
    EXPECT_EQ(l.probs, 0.0);
    EXPECT_EQ(l.output, 0.0);
  }
}

TEST(Fidelity, FullRankWithDroppedKeyBiasesIsExact) {
  // GPT-2-shaped models carry key biases; compression drops them, which shifts
  // every query's scores by a constant that softmax (and fidelity) ignore.
  Model m = random_model(tiny_gpt2(), 3, 0.3);
  Model c = compress_model(m, svd_keys(8), {});
  FidelityReport r = measure_fidelity(c, m, some_tokens(40, 61, 4), 40, false);
  for (const auto& l : r.layers) {
    EXPECT_LT(l.scores, 1e-5);
    EXPECT_LT(l.probs, 1e-5);
    EXPECT_LT(l.output, 1e-5);
  }
}

// Layer 0 sees the same input in both models, so its centred score error
// follows from the weights: Q (K - K_r)^T with K_r from a truncated SVD of
// each head's W_K block, computed here in double precision.
TEST(Fidelity, FirstLayerScoreErrorMatchesTheWeights) {
  const ModelConfig cfg = tiny_gpt2();
  Model m = random_model(cfg, 5, 0.3);
  const int rank = 3, T = 24, d = cfg.head_dim;
  Model c = compress_model(m, svd_keys(rank), {});
  auto tokens = some_tokens(T, 61, 6);
  FidelityReport r = measure_fidelity(c, m, tokens, T, false);

  const LayerWeights& L = m.weights.layers[0];
  at::Tensor ids = at::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()));
  at::Tensor x = m.weights.tok_emb.index_select(0, ids) + m.weights.pos_emb.narrow(0, 0, T);
  at::Tensor h =
      at::layer_norm(x, {cfg.dim}, L.attn_norm, L.attn_norm_bias, cfg.norm_eps).to(at::kDouble);
  double num = 0, den = 0;
  for (int head = 0; head < cfg.n_heads; ++head) {
    at::Tensor wq = L.wq.narrow(0, head * d, d).to(at::kDouble);
    at::Tensor wk = L.wk.narrow(0, head * d, d).to(at::kDouble);
    at::Tensor q = at::matmul(h, wq.t()) + L.bq.narrow(0, head * d, d).to(at::kDouble);
    at::Tensor k = at::matmul(h, wk.t()) + L.bk.narrow(0, head * d, d).to(at::kDouble);
    auto [U, S, Vh] = at::linalg_svd(wk, false);
    at::Tensor wk_r =
        at::matmul(U.narrow(1, 0, rank) * S.narrow(0, 0, rank), Vh.narrow(0, 0, rank));
    at::Tensor k_r = at::matmul(h, wk_r.t());
    at::Tensor s = at::matmul(q, k.t()) / std::sqrt(double(d));
    at::Tensor s_r = at::matmul(q, k_r.t()) / std::sqrt(double(d));
    for (int i = 0; i < T; ++i) {  // causal rows, each centred over its visible keys
      at::Tensor a = s[i].narrow(0, 0, i + 1), b = s_r[i].narrow(0, 0, i + 1);
      a = a - a.mean();
      b = b - b.mean();
      num += (a - b).pow(2).sum().item<double>();
      den += a.pow(2).sum().item<double>();
    }
  }
  const double expected = std::sqrt(num / den);
  EXPECT_GT(expected, 0.05);  // the truncation really changes the scores
  EXPECT_NEAR(r.layers[0].scores, expected, 1e-4 * expected);
}

TEST(Fidelity, LowerRankGivesLargerFirstLayerError) {
  Model m = random_model(tiny_gpt2(), 7, 0.3);
  auto tokens = some_tokens(32, 61, 8);
  double previous = 0;
  for (int rank : {8, 6, 4, 2, 1}) {
    FidelityReport r =
        measure_fidelity(compress_model(m, svd_keys(rank), {}), m, tokens, 32, false);
    EXPECT_GE(r.layers[0].scores, previous - 1e-9) << "rank " << rank;
    previous = r.layers[0].scores;
  }
}

TEST(Fidelity, RefusesModelsOfDifferentShape) {
  ModelConfig a = tiny_gpt2(), b = tiny_gpt2();
  b.n_layers = 3;
  Model ma = random_model(a, 1), mb = random_model(b, 1);
  EXPECT_THROW(measure_fidelity(ma, mb, some_tokens(8, 61, 1), 8, false), Error);
  EXPECT_THROW(measure_fidelity(ma, ma, some_tokens(8, 61, 1), 0, false), Error);
  EXPECT_THROW(measure_fidelity(ma, ma, std::span<const int32_t>(), 8, false), Error);
}

TEST(Spectrum, SummaryOfHandPickedValues) {
  // Squared values 4, 3, 2, 1: energy 0.4, 0.7, 0.9, 1.0.
  HeadSpectrum h = summarize_spectrum({1, 4, 2, 3}, 8);
  ASSERT_EQ(h.sigma.size(), 4u);
  EXPECT_DOUBLE_EQ(h.sigma[0], 2.0);
  EXPECT_DOUBLE_EQ(h.sigma[3], 1.0);
  EXPECT_NEAR(h.energy[1], 0.7, 1e-15);
  EXPECT_EQ(h.rank90, 3);
  EXPECT_EQ(h.rank95, 4);
  EXPECT_EQ(h.rank99, 4);
  EXPECT_NEAR(h.energy_quarter, 0.7, 1e-15);  // top 8/4 = 2 directions
  EXPECT_NEAR(h.energy_half, 1.0, 1e-15);
}

TEST(Spectrum, RecoversSingularValuesPlantedInTheKeyWeights) {
  ModelConfig cfg = tiny_gpt2();
  Model m = random_model(cfg, 9);
  const int d = cfg.head_dim;
  // Head 1 of layer 0: W_K block = U diag(s) V^T with orthonormal U, V from QR.
  at::Tensor U = std::get<0>(at::linalg_qr(at::randn({d, d}, at::kDouble)));
  at::Tensor V = std::get<0>(at::linalg_qr(at::randn({cfg.dim, d}, at::kDouble)));
  at::Tensor s = at::tensor(std::vector<double>{5, 4, 3, 0.5, 0.25, 0, 0, 0}, at::kDouble);
  m.weights.layers[0].wk.narrow(0, d, d).copy_(at::matmul(U * s, V.t()));
  m.finalize();
  SpectrumReport r = measure_spectrum(m);
  ASSERT_EQ(r.layers.size(), 2u);
  const HeadSpectrum& h = r.layers[0].weight_keys[1];
  ASSERT_EQ(h.sigma.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(h.sigma[i], s[i].item<double>(), 1e-5);
  // Energies 25, 16, 9, 0.25, 0.0625 of 50.3125.
  EXPECT_EQ(h.rank90, 3);  // 50 / 50.3125 = 0.9938
  EXPECT_EQ(h.rank99, 3);
  EXPECT_NEAR(h.energy_quarter, 41 / 50.3125, 1e-6);
  EXPECT_EQ(r.layers[0].weight_queries.size(), 4u);
}

// The data spectra are eigenvalues of calibration second moments; the same
// numbers are the singular values of the raw keys (and of each KV head's
// stacked query heads), taken here straight from the forward pass.
TEST(Spectrum, DataSpectraAreTheSingularValuesOfTheObservedKeysAndQueries) {
  // A RoPE model, so that keys before and after rotation differ (the data
  // spectra are of the pre-rotation keys), with two query heads per KV head,
  // whose moments are summed.
  const ModelConfig cfg = llama_config({61, 32, 2, 4, 2, 8, 64, 64});
  Model m = random_model(cfg, 4, 0.3);
  auto tokens = some_tokens(48, 61, 8);
  SpectrumOptions so;
  so.ctx = 48;  // one window, as observed below
  so.show_progress = false;
  SpectrumReport r = measure_spectrum(m, tokens, so);
  EXPECT_EQ(r.calibration_tokens, 48);
  std::vector<at::Tensor> qs, ks;
  QKObserver obs = [&](int, const at::Tensor& q, const at::Tensor& k, const at::Tensor&,
                       const at::Tensor&) {
    qs.push_back(q.to(at::kDouble));
    ks.push_back(k.to(at::kDouble));
  };
  KVCache cache(m.config, 48);
  forward(m, tokens, cache, Logits::Last, &obs);
  ASSERT_EQ(r.layers.size(), 2u);
  for (int l = 0; l < 2; ++l)
    for (int g = 0; g < 2; ++g) {
      at::Tensor sk = at::linalg_svdvals(ks[l].select(1, g));  // [T, d]
      at::Tensor sq = at::linalg_svdvals(
          at::cat({qs[l].select(1, 2 * g), qs[l].select(1, 2 * g + 1)}, 0));  // [2T, d]
      const HeadSpectrum& hk = r.layers[l].data_keys.at(g);
      const HeadSpectrum& hq = r.layers[l].data_queries.at(g);
      ASSERT_EQ(hk.sigma.size(), 8u);
      ASSERT_EQ(hq.sigma.size(), 8u);
      for (int i = 0; i < 8; ++i) {
        EXPECT_NEAR(hk.sigma[i], sk[i].item<double>(), 1e-4 * sk[0].item<double>())
            << "layer " << l << " key head " << g << " sigma " << i;
        EXPECT_NEAR(hq.sigma[i], sq[i].item<double>(), 1e-4 * sq[0].item<double>())
            << "layer " << l << " query group " << g << " sigma " << i;
      }
    }
}

// eval's KL(reference || model) per scored token, worked out by hand: the
// reference's LM head is zero, so it predicts the uniform distribution u over
// 4 tokens; the model's logits are chosen per input token, so after token 1 it
// predicts p = (5/8, 1/8, 1/8, 1/8) and after any other token u.
//   KL(u || p) = -ln 4 - (ln(5/8) + 3 ln(1/8)) / 4 = ln 2 - ln(5) / 4 = 0.2908
// (the reverse, KL(p || u) = 0.3128, would fail). Windows of 4 tokens advancing
// by 2 over 8 tokens score the rows of positions 0..6 once each (3 + 2 + 2);
// token 1 sits at positions 1, 4 and 5, so KL = 3/7 (ln 2 - ln(5) / 4).
TEST(Eval, KlAgainstAReferenceMatchesAHandComputedValue) {
  ModelConfig cfg = tiny_gpt2();
  cfg.vocab_size = 4;
  Model ref = random_model(cfg, 5, 0.3);
  ref.weights.lm_head.zero_();
  ref.finalize();
  const std::vector<int32_t> tokens = {0, 1, 2, 3, 1, 1, 0, 2};
  const double l2 = std::log(2.0);
  WindowLogits hand = [&](std::span<const int32_t> window) {
    at::Tensor out = at::zeros({static_cast<int64_t>(window.size()), 4}, at::kFloat);
    for (size_t i = 0; i < window.size(); ++i)
      if (window[i] == 1)
        out[static_cast<int64_t>(i)] =
            at::tensor(std::vector<float>{static_cast<float>(std::log(5.0)), 0.0f, 0.0f, 0.0f});
    return out;
  };
  PerplexityOptions po;
  po.ctx = 4;
  po.stride = 2;
  po.show_progress = false;
  PerplexityResult r = evaluate_perplexity(ref, tokens, po, {}, &ref, hand);
  EXPECT_EQ(r.tokens_scored, 7);
  EXPECT_EQ(r.windows, 3);
  ASSERT_TRUE(r.has_reference);
  EXPECT_NEAR(r.kl_mean, 3.0 / 7.0 * (l2 - std::log(5.0) / 4.0), 1e-6);
  // Targets after positions 0..6 are 1 2 3 1 1 0 2; the model gives them
  // 1/4, 1/8 (after token 1), 1/4, 1/4, 1/8 (after 1), 5/8 (after 1), 1/4.
  const double nll = (4 * std::log(4.0) + 2 * std::log(8.0) + std::log(8.0 / 5.0)) / 7.0;
  EXPECT_NEAR(r.mean_nll, nll, 1e-6);
  EXPECT_NEAR(r.reference_nll, std::log(4.0), 1e-6);  // uniform
}

}  // namespace
}  // namespace thinkeys

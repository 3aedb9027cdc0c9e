// MLA and LRKV: the runtime's absorbed attention equals a plain per-head
// reference written from the papers' definitions (explicit keys and values per
// head); LRKV with zero residuals is exactly MQA; incremental decode equals
// prefill equals the training forward; checkpoints round-trip; the cache holds
// the hand-derived number of bytes; training lowers the loss; refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cache/paged_kv_cache.h"
#include "checkpoint/hf_checkpoint.h"
#include "compress/compressor.h"
#include "config/cache_layout.h"
#include "io/hf_config.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "model/weight_format.h"
#include "runtime/batch_decoder.h"
#include "runtime/logits_tensor.h"
#include "test_support.h"
#include "train/model_builder.h"
#include "train/trainable.h"
#include "train/trainer.h"
#include "train/training_forward.h"
#include "train/window_dataset.h"
#include "util/error.h"

namespace thinkeys {
namespace {

ArchConfig variant_arch(int mla_latent, int lrkv_rank) {
  ArchConfig a;
  a.arch = "llama";
  a.vocab_size = 53;
  a.dim = 32;
  a.n_layers = 1;
  a.n_heads = 4;
  a.head_dim = 8;
  a.ctx = 24;
  a.hidden_dim = 40;
  a.mla_latent = mla_latent;
  a.mla_rope_dim = mla_latent > 0 ? 4 : 0;
  a.lrkv_rank = lrkv_rank;
  return a;
}

using test::random_tokens;

// Larger random weights than the training init, so attention is far from
// uniform and a wrong key/value path shows.
Model random_variant(const ArchConfig& a, uint64_t seed) {
  Model m = init_model(make_model_config(a), seed);
  at::NoGradGuard g;
  at::manual_seed(static_cast<uint64_t>(seed));
  for (auto& L : m.weights.layers) {
    for (at::Tensor* t :
         {&L.wq, &L.wk, &L.wv, &L.kv_up, &L.k_res_down, &L.k_res_up, &L.v_res_down, &L.v_res_up})
      if (t->defined()) t->copy_(at::randn(t->sizes()) * 0.3);
    if (L.kv_norm.defined()) L.kv_norm.copy_(at::rand(L.kv_norm.sizes()) + 0.5);
  }
  return m;
}

// Plain RoPE in double: pairs (i, i + w/2) rotated by pos * theta^(-2i/w).
at::Tensor rope(const at::Tensor& x, double theta) {  // x [T, w]
  const int64_t T = x.size(0), w = x.size(1), half = w / 2;
  at::Tensor out = x.clone();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(t) * std::pow(theta, -2.0 * i / w);
      const double x1 = x[t][i].item<double>(), x2 = x[t][i + half].item<double>();
      out[t][i] = x1 * std::cos(a) - x2 * std::sin(a);
      out[t][i + half] = x2 * std::cos(a) + x1 * std::sin(a);
    }
  return out;
}

// The RoPE rotation by `delta` positions as a [w, w] matrix: planes (i, i + w/2)
// turned by delta * theta^(-2i/w), so rope(x, t) = rotation(t) x.
at::Tensor rotation(int64_t delta, int64_t w, double theta) {
  const int64_t half = w / 2;
  at::Tensor R = at::zeros({w, w}, at::kDouble);
  for (int64_t i = 0; i < half; ++i) {
    const double a = static_cast<double>(delta) * std::pow(theta, -2.0 * i / w);
    R[i][i] = std::cos(a);
    R[i][i + half] = -std::sin(a);
    R[i + half][i] = std::sin(a);
    R[i + half][i + half] = std::cos(a);
  }
  return R;
}

at::Tensor rms(const at::Tensor& x, const at::Tensor& w, double eps) {
  return x * at::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale) {
  const int64_t T = q.size(0);
  at::Tensor s = at::matmul(q, k.t()) * scale;
  s = s.masked_fill(at::ones({T, T}, at::kBool).triu(1), -INFINITY);
  return at::matmul(at::softmax(s, -1), v);
}

// Logits of a one-layer model whose MLP output is zero, with attention written
// per head from explicit keys and values (nothing absorbed), in double.
at::Tensor reference_logits(const Model& m, const std::vector<int32_t>& toks) {
  const ModelConfig& c = m.config;
  const LayerWeights& L = m.weights.layers[0];
  auto D = [](const at::Tensor& t) { return t.to(at::kDouble); };
  const int64_t T = static_cast<int64_t>(toks.size()), H = c.n_heads, d = c.head_dim;
  at::Tensor ids = at::tensor(std::vector<int64_t>(toks.begin(), toks.end()), at::kLong);
  at::Tensor x = D(m.weights.tok_emb).index_select(0, ids);
  at::Tensor h = rms(x, D(L.attn_norm), c.norm_eps);
  std::vector<at::Tensor> heads;
  if (c.is_mla()) {
    const int64_t dn = c.attention.nope_dim, dr = c.attention.rope_dim, dc = c.attention.latent;
    at::Tensor a = at::matmul(h, D(L.wk).t());
    at::Tensor lat = rms(a.narrow(1, 0, dc), D(L.kv_norm), c.norm_eps);
    at::Tensor k_rope = rope(a.narrow(1, dc, dr), c.rope_theta);
    at::Tensor q = at::matmul(h, D(L.wq).t());
    for (int64_t i = 0; i < H; ++i) {
      at::Tensor up = D(L.kv_up).narrow(0, i * (dn + d), dn + d);
      at::Tensor k = at::cat({at::matmul(lat, up.narrow(0, 0, dn).t()), k_rope}, 1);
      at::Tensor v = at::matmul(lat, up.narrow(0, dn, d).t());
      at::Tensor qi = q.narrow(1, i * (dn + dr), dn + dr);
      qi = at::cat({qi.narrow(1, 0, dn), rope(qi.narrow(1, dn, dr), c.rope_theta)}, 1);
      heads.push_back(causal_attention(qi, k, v, 1.0 / std::sqrt(double(dn + dr))));
    }
  } else {
    // The paper's per-head projections, formed explicitly:
    //   W_K,h = W_K,shared + U_h V_h,  W_V,h = W_V,shared + U'_h V'_h,
    // with RoPE on the shared key part only (docs/design.md section 6; the paper
    // does not publish its placement). Rotating query and key by their
    // positions t and s is the same as rotating the key by s - t, so the key
    // token s shows query t is k_h(t, s) = (R(s - t) W_K,shared + U_h V_h) x_s,
    // and the score is the plain dot product q_h(t) . k_h(t, s). Nothing here
    // uses the runtime's cached latents or its absorbed U_h^T q.
    const int64_t r = c.attention.rank;
    const at::Tensor Wks = D(L.wk), Wvs = D(L.wv);
    at::Tensor q = at::matmul(h, D(L.wq).t());
    for (int64_t i = 0; i < H; ++i) {
      at::Tensor Wk_h_res =
          at::matmul(D(L.k_res_up).narrow(0, i * d, d), D(L.k_res_down).narrow(0, i * r, r));
      at::Tensor Wv_h = Wvs + at::matmul(D(L.v_res_up).narrow(0, i * d, d),
                                         D(L.v_res_down).narrow(0, i * r, r));  // [d, D]
      at::Tensor out = at::zeros({T, d}, at::kDouble);
      for (int64_t t = 0; t < T; ++t) {
        at::Tensor scores = at::empty({t + 1}, at::kDouble);
        for (int64_t s = 0; s <= t; ++s) {
          at::Tensor Wk_h = at::matmul(rotation(s - t, d, c.rope_theta), Wks) + Wk_h_res;
          scores[s] =
              at::dot(q[t].narrow(0, i * d, d), at::matmul(Wk_h, h[s])) / std::sqrt(double(d));
        }
        at::Tensor p = at::softmax(scores, 0);
        for (int64_t s = 0; s <= t; ++s) out[t] += p[s] * at::matmul(Wv_h, h[s]);
      }
      heads.push_back(out);
    }
  }
  x = x + at::matmul(at::cat(heads, 1), D(L.wo).t());
  x = rms(x, D(m.weights.final_norm), c.norm_eps);
  return at::matmul(x, D(m.weights.lm_head).t()).to(at::kFloat);
}

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

class VariantTest : public ::testing::TestWithParam<bool> {
 protected:
  ArchConfig arch() const { return GetParam() ? variant_arch(12, 0) : variant_arch(0, 3); }
};

TEST_P(VariantTest, RuntimeMatchesPlainPerHeadReference) {
  Model m = random_variant(arch(), 3);
  m.weights.layers[0].w_down.zero_();  // MLP adds nothing: the layer is attention
  auto toks = random_tokens(17, m.config.vocab_size, 5);
  KVCache cache(m.config, 24);
  at::Tensor got = forward(m, toks, cache);
  EXPECT_LT(rel_err(got, reference_logits(m, toks)), 1e-5);
}

TEST_P(VariantTest, DecodeEqualsPrefillEqualsTrainingForward) {
  ArchConfig a = arch();
  a.n_layers = 2;
  Model m = random_variant(a, 7);
  auto toks = random_tokens(20, m.config.vocab_size, 9);
  KVCache full(m.config, 24);
  at::Tensor prefill = forward(m, toks, full);
  KVCache step(m.config, 24);
  // Prefill 5 tokens, then one at a time: later tokens read cached rows.
  forward(m, std::span<const int32_t>(toks.data(), 5), step);
  for (size_t t = 5; t < toks.size(); ++t) {
    at::Tensor row = forward(m, std::span<const int32_t>(toks.data() + t, 1), step);
    EXPECT_LT(rel_err(row[0], prefill[static_cast<int64_t>(t)]), 1e-5) << "position " << t;
  }
  at::NoGradGuard g;
  at::Tensor ids =
      at::tensor(std::vector<int64_t>(toks.begin(), toks.end()), at::kLong).view({1, -1});
  EXPECT_LT(rel_err(training_forward(m, ids)[0], prefill), 1e-5);
}

TEST_P(VariantTest, CacheHoldsTheHandDerivedBytes) {
  Model m = random_variant(arch(), 1);
  const ModelConfig& c = m.config;
  // MLA: latent 12 + RoPE key 4, stored once. LRKV: 2 x (shared 8 + 4 heads x rank 3).
  const int64_t floats = c.is_mla() ? 12 + 4 : 2 * (8 + 4 * 3);
  EXPECT_EQ(KVCache(c, 100).allocated_bytes(), floats * 4 * 100);
  EXPECT_EQ(c.kv_bytes_per_token(2, 2), floats * 2);
  EXPECT_LT(c.kv_bytes_per_token(2, 2), 2 * 4 * 8 * 2);  // MHA: 2 x heads x d x 2 bytes
}

TEST_P(VariantTest, CheckpointRoundTripsExactly) {
  Model m = random_variant(arch(), 11);
  test::TempDir dir;
  write_hf_checkpoint(m, dir.path(), DType::F32);
  Model back = load_hf_checkpoint(dir.path());
  EXPECT_EQ(back.config.attention.kind, m.config.attention.kind);
  EXPECT_EQ(back.parameter_count(), m.parameter_count());
  auto toks = random_tokens(12, m.config.vocab_size, 2);
  KVCache c1(m.config, 12), c2(back.config, 12);
  EXPECT_TRUE(at::equal(forward(m, toks, c1), forward(back, toks, c2)));
}

TEST_P(VariantTest, FewTrainingStepsReduceTheLoss) {
  ArchConfig a = arch();
  a.n_layers = 2;
  Model m = init_model(make_model_config(a), 1);
  auto phrase = random_tokens(11, a.vocab_size, 4);
  std::vector<int32_t> stream(3000);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = phrase[i % phrase.size()];
  WindowDataset data(stream, 20, 42);
  TrainConfig t;
  t.steps = 25;
  t.batch_size = 4;
  t.lr = 3e-3;
  t.warmup_steps = 3;
  t.show_progress = false;
  t.log_every = 0;
  Trainer trainer(m, t, data.source());
  trainer.set_validation({data.windows_in_order(0, 4)});
  const double before = trainer.validate();
  EXPECT_LT(trainer.run().final_val_loss, before - 1.0);
}

// A small paged cache of `block_tokens`-token blocks (several blocks a
// sequence, so both threads claim some) with keys and values as given.
BatchDecoderOptions paged_options(CacheDType keys, CacheDType values, int block_tokens) {
  BatchDecoderOptions o;
  o.cache.key_dtype = keys;
  o.cache.value_dtype = values;
  o.cache.block_tokens = block_tokens;
  o.cache.budget_bytes = 1 << 20;
  o.threads = 2;
  return o;
}

// Row r of a decode step's logits as a tensor of its own.
at::Tensor logits_row(const LogitRows& rows, int r) {
  return at::from_blob(const_cast<float*>(rows.row(r).data()), {rows.vocab}).clone();
}

// One token of sequence `id` through the decoder: its logits.
at::Tensor step_logits(BatchDecoder& dec, int id, int32_t token) {
  return logits_row(dec.step(std::span<const int>(&id, 1), std::span<const int32_t>(&token, 1)), 0);
}

// A new sequence prefilled with toks[0, prompt), then the rest one token a
// step: the largest relative error of the steps' logits against want [T, V].
double worst_step_error(BatchDecoder& dec, const std::vector<int32_t>& toks, int prompt,
                        const at::Tensor& want) {
  const int id = dec.add(std::span<const int32_t>(toks.data(), prompt));
  double e = 0;
  for (std::size_t t = prompt; t < toks.size(); ++t)
    e = std::max(e, rel_err(step_logits(dec, id, toks[t]), want[static_cast<int64_t>(t)]));
  return e;
}

// The paged cache and the fused decode step (runtime/variant_rows.h): a
// prompt prefilled, then one token a step, each step's logits against the
// plain per-head reference above; then the libtorch pass over the same cache.
TEST_P(VariantTest, PagedDecodeMatchesThePlainReference) {
  Model m = random_variant(arch(), 3);
  m.weights.layers[0].w_down.zero_();
  auto toks = random_tokens(19, m.config.vocab_size, 6);
  const at::Tensor want = reference_logits(m, toks);
  for (CacheDType dtype : {CacheDType::F32, CacheDType::F16}) {
    for (bool fused : {true, false}) {
      BatchDecoderOptions o = paged_options(dtype, dtype, 4);
      o.fused = fused;
      BatchDecoder dec(m, o);
      ASSERT_EQ(dec.uses_fused_step(), fused);
      // f32 rows: the same sums in another order; f16 rows: keys and values
      // rounded to 11 significant bits, so ~2^-11 of the scores' scale.
      const double tol = dtype == CacheDType::F32 ? 1e-5 : 2e-3;
      EXPECT_LT(worst_step_error(dec, toks, 5, want), tol)
          << to_string(dtype) << (fused ? " fused" : " libtorch");
    }
  }
}

// MLA's and LRKV's per-head maps keep the model's float dtype when its
// matrices are converted (bf16 beside int8 ones), so a step reads half
// their f32 bytes, and decoding reads them as held: against the plain
// reference widening the same stored values to double (bf16, f16), or, for
// int8 matrices, whose activations decode rounds to int16, the libtorch
// dense pass of the same model.
TEST_P(VariantTest, MapsKeepTheModelsDtypeAndDecodeAsHeld) {
  const auto toks = random_tokens(19, 53, 6);
  for (WeightFormat f : {WeightFormat::BF16, WeightFormat::F16, WeightFormat::Int8}) {
    Model m = random_variant(arch(), 3);
    m.weights.layers[0].w_down.zero_();
    convert_weights(m, f);
    const LayerWeights& L = m.weights.layers[0];
    int64_t maps = 0;
    for (const at::Tensor* t : {&L.kv_up, &L.k_res_up, &L.v_res_up}) {
      if (!t->defined()) continue;
      EXPECT_EQ(t->scalar_type(), f == WeightFormat::F16 ? at::kHalf : at::kBFloat16);
      maps += t->numel();
    }
    EXPECT_EQ(maps, GetParam() ? 4 * 16 * 12 : 2 * 4 * 8 * 3);
    BatchDecoder dec(m, paged_options(CacheDType::F32, CacheDType::F32, 4));
    if (f != WeightFormat::Int8) {
      EXPECT_LT(worst_step_error(dec, toks, 5, reference_logits(m, toks)), 1e-5)
          << weight_format_name(f);
      continue;
    }
    // One token at a time, so that the dense pass multiplies the int8
    // matrices by int16-rounded rows as decode does (many rows would take a
    // bf16 product). The two passes sum in other orders, so an element may
    // round to the neighbouring level: 2^-16 (1.5e-5) of its row's largest.
    KVCache dense(m.config, 24);
    std::vector<at::Tensor> rows;
    for (int32_t t : toks)
      rows.push_back(forward(m, std::vector<int32_t>{t}, dense, Logits::Last)[0]);
    EXPECT_LT(worst_step_error(dec, toks, 5, at::stack(rows)), 1e-4);
  }
}

// Several sequences of different lengths in one step, two layers with their
// MLPs: the paged step against the dense runtime (its own absorbed libtorch
// attention over an f32 cache), and the cache holding only the thin rows.
TEST_P(VariantTest, BatchedPagedStepsMatchTheDenseRuntime) {
  ArchConfig a = arch();
  a.n_layers = 2;
  Model m = random_variant(a, 5);
  const ModelConfig& c = m.config;
  BatchDecoder dec(m, paged_options(CacheDType::F32, CacheDType::F32, 4));
  // Per layer and token: MLA one 16-float row; LRKV a 20-float key and value.
  EXPECT_EQ(dec.cache().payload_bytes_per_token(), std::size_t{2} * (c.is_mla() ? 16 : 40) * 4);
  std::vector<std::vector<int32_t>> seqs = {random_tokens(7, c.vocab_size, 1),
                                            random_tokens(3, c.vocab_size, 2),
                                            random_tokens(12, c.vocab_size, 3)};
  std::vector<int> ids;
  for (const auto& s : seqs) ids.push_back(dec.add(s));
  for (int step = 0; step < 6; ++step) {
    std::vector<int32_t> next;
    for (std::size_t i = 0; i < seqs.size(); ++i)
      next.push_back(random_tokens(1, c.vocab_size, 100 + 7 * step + i)[0]);
    const LogitRows rows = dec.step(ids, next);
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      seqs[i].push_back(next[i]);
      KVCache dense(c, 24);
      const at::Tensor want = forward(m, seqs[i], dense, Logits::Last)[0];
      EXPECT_LT(rel_err(logits_row(rows, static_cast<int>(i)), want), 1e-5)
          << "sequence " << i << ", step " << step;
    }
  }
}

// More query heads than one attention task takes (72 > kMaxQueries = 64):
// each cached row gets two tasks, run together; every head still matches
// the plain per-head reference, on the fused step and the libtorch pass.
TEST_P(VariantTest, MoreHeadsThanATaskTakes) {
  ArchConfig a = arch();
  a.n_heads = 72;
  Model m = random_variant(a, 12);
  m.weights.layers[0].w_down.zero_();
  const auto toks = random_tokens(11, m.config.vocab_size, 4);
  const at::Tensor want = reference_logits(m, toks);
  for (bool fused : {true, false}) {
    BatchDecoderOptions o = paged_options(CacheDType::F32, CacheDType::F32, 4);
    o.fused = fused;
    BatchDecoder dec(m, o);
    EXPECT_LT(worst_step_error(dec, toks, 3, want), 1e-5) << (fused ? "fused" : "libtorch");
  }
}

// A latent of whole vectors (32 floats): the kernel reads the value rows in
// place at the key rows' stride instead of decoding them to scratch first.
TEST(Mla, WideLatentValuesReadInPlace) {
  ArchConfig a = variant_arch(32, 0);
  a.mla_rope_dim = 16;
  Model m = random_variant(a, 4);
  const auto toks = random_tokens(21, m.config.vocab_size, 8);
  KVCache dense(m.config, 24);
  const at::Tensor want = forward(m, toks, dense);
  for (CacheDType dtype : {CacheDType::F32, CacheDType::F16, CacheDType::BF16}) {
    BatchDecoder dec(m, paged_options(dtype, CacheDType::F16, 8));
    EXPECT_EQ(dec.cache().payload_bytes_per_token(),
              (32u + 16) * (dtype == CacheDType::F32 ? 4 : 2));
    // bf16 rows keep 8 significant bits: scores and sums to ~2^-8.
    const double tol = dtype == CacheDType::F32 ? 1e-5 : dtype == CacheDType::F16 ? 2e-3 : 2e-2;
    EXPECT_LT(worst_step_error(dec, toks, 9, want), tol) << to_string(dtype);
  }
}

// Odd and extreme widths (a one-wide latent, rank 1, rank = head_dim, widths
// that are no whole vector, 3 heads, 5 layers of 5-token blocks) take the
// same paged steps as the dense runtime.
TEST(Variants, EdgeShapesPagedStepsMatchTheDenseRuntime) {
  struct Shape {
    int latent, rope, rank, heads, head_dim;
  };
  for (const Shape& sh : {Shape{1, 2, 0, 4, 8}, Shape{17, 6, 0, 3, 10}, Shape{40, 2, 0, 2, 16},
                          Shape{0, 0, 1, 4, 8}, Shape{0, 0, 10, 3, 10}, Shape{0, 0, 5, 5, 6}}) {
    ArchConfig a = variant_arch(sh.latent, sh.rank);
    a.mla_rope_dim = sh.rope;
    a.n_heads = sh.heads;
    a.head_dim = sh.head_dim;
    a.dim = 30;
    a.n_layers = 5;
    Model m = random_variant(a, 6);
    const auto toks = random_tokens(23, m.config.vocab_size, 4);
    KVCache dense(m.config, 24);
    const at::Tensor want = forward(m, toks, dense);
    BatchDecoder dec(m, paged_options(CacheDType::F32, CacheDType::F32, 5));
    EXPECT_LT(worst_step_error(dec, toks, 2, want), 1e-5)
        << "latent " << sh.latent << " rank " << sh.rank << " heads " << sh.heads;
  }
}

// LRKV's rows quantize like any cache row: int8 keys and values (one f16
// scale per 20-wide row: 22 bytes each) stay near the dense f32 path, int4
// keys further off, and the cache holds exactly those bytes.
TEST(Lrkv, QuantizedRowsCostWhatTheirBitsSay) {
  Model m = random_variant(variant_arch(0, 3), 3);
  const auto toks = random_tokens(23, m.config.vocab_size, 4);
  KVCache dense(m.config, 24);
  const at::Tensor want = forward(m, toks, dense);
  auto worst = [&](CacheDType k, CacheDType v, std::size_t payload) {
    BatchDecoder dec(m, paged_options(k, v, 4));
    EXPECT_EQ(dec.cache().payload_bytes_per_token(), payload);
    return worst_step_error(dec, toks, 2, want);
  };
  const double f16 = worst(CacheDType::F16, CacheDType::F16, 2 * 20 * 2);
  const double int8 = worst(CacheDType::Int8, CacheDType::Int8, 2 * (20 + 2));
  const double int4 = worst(CacheDType::Int4, CacheDType::F16, 10 + 2 + 20 * 2);
  EXPECT_LT(f16, 2e-3);
  EXPECT_LT(int8, 5e-2);
  EXPECT_GT(int8, f16);
  EXPECT_GT(int4, int8);
}

TEST(Mla, QuantizedKeysAreRefusedTheValuesReadThem) {
  Model m = random_variant(variant_arch(12, 0), 2);
  BatchDecoderOptions o;
  o.cache.key_dtype = CacheDType::Int8;
  o.cache.budget_bytes = 1 << 20;
  try {
    BatchDecoder dec(m, o);
    ADD_FAILURE() << "int8 MLA keys accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MLA's latent"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(MlaAndLrkv, VariantTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "MLA" : "LRKV"; });

TEST(Lrkv, ZeroResidualsIsExactlyMqa) {
  Model lrkv = random_variant(variant_arch(0, 3), 5);
  for (auto& L : lrkv.weights.layers) L.k_res_up.zero_(), L.v_res_up.zero_();
  ArchConfig a = variant_arch(0, 0);
  a.n_kv_heads = 1;
  Model mqa = init_model(make_model_config(a), 99);
  {
    at::NoGradGuard g;
    mqa.weights = lrkv.weights;  // shallow copy; the MQA layout ignores residual maps
    for (auto& L : mqa.weights.layers) {
      L.k_res_down = L.v_res_down = L.k_res_up = L.v_res_up = at::Tensor();
      L.wq = L.wq.clone(), L.wk = L.wk.clone(), L.wv = L.wv.clone();
    }
    mqa.finalize();
  }
  auto toks = random_tokens(15, a.vocab_size, 8);
  KVCache c1(lrkv.config, 16), c2(mqa.config, 16);
  EXPECT_LT(rel_err(forward(lrkv, toks, c1), forward(mqa, toks, c2)), 1e-5);
}

// query_pre_attn_scalar s scales scores by s^-1/2 instead of head_dim^-1/2:
// the same function as the default scale with W_Q multiplied by sqrt(d / s).
TEST(ScoreScale, EqualsRescaledQueriesInEveryPathAndRoundTrips) {
  ArchConfig a = variant_arch(0, 0);
  a.n_layers = 2;
  a.n_kv_heads = 2;
  a.d_select = 16;  // thin keys, 4 per head; the paper's scale is 1/sqrt(4)
  a.query_pre_attn_scalar = 4;
  Model scaled = random_variant(a, 21);
  a.query_pre_attn_scalar = 0;
  Model plain = init_model(make_model_config(a), 1);
  {
    at::NoGradGuard g;
    plain.weights = scaled.weights;  // shallow; the query map is replaced below
    for (auto& L : plain.weights.layers) {
      L.wq = L.wq.clone() * std::sqrt(8.0 / 4.0);  // sqrt(head_dim / scalar)
      L.wk = L.wk.clone(), L.wv = L.wv.clone();
    }
    plain.finalize();
  }
  auto toks = random_tokens(14, a.vocab_size, 3);
  KVCache c1(scaled.config, 16), c2(plain.config, 16);
  at::Tensor want = forward(plain, toks, c2);
  EXPECT_LT(rel_err(forward(scaled, toks, c1), want), 1e-5);
  at::Tensor ids =
      at::tensor(std::vector<int64_t>(toks.begin(), toks.end()), at::kLong).view({1, -1});
  {
    at::NoGradGuard g;
    EXPECT_LT(rel_err(training_forward(scaled, ids)[0], want), 1e-5);
  }
  // The paged decode path reads the same scale.
  BatchDecoder dec(scaled, {CacheSpec{CacheDType::F32, CacheDType::F32, 32, 4, 1 << 20}, 1});
  std::vector<float> prompt_last;
  const int id = dec.add(std::span<const int32_t>(toks.data(), 5), &prompt_last);
  for (size_t t = 5; t < toks.size(); ++t) {
    const int ids1[1] = {id};
    const at::Tensor last =
        logits_tensor(dec.step(ids1, std::span<const int32_t>(toks.data() + t, 1)));
    EXPECT_LT(rel_err(last[0], want[static_cast<int64_t>(t)]), 1e-4) << t;
  }
  test::TempDir dir;
  write_hf_checkpoint(scaled, dir.path(), DType::F32);
  EXPECT_EQ(load_hf_checkpoint(dir.path()).config.query_pre_attn_scalar, 4.0);
}

std::string arch_error(const ArchConfig& a) {
  try {
    make_model_config(a);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Variants, BadConfigurationsFailClearly) {
  ArchConfig a = variant_arch(12, 0);
  a.arch = "gpt2";
  a.head_dim = 0;
  EXPECT_NE(arch_error(a).find("llama architecture"), std::string::npos) << arch_error(a);
  a = variant_arch(12, 3);
  EXPECT_NE(arch_error(a).find("not both"), std::string::npos) << arch_error(a);
  a = variant_arch(0, 9);
  EXPECT_NE(arch_error(a).find("exceeds the head dimension"), std::string::npos) << arch_error(a);
  a = variant_arch(12, 0);
  a.n_kv_heads = 2;
  EXPECT_NE(arch_error(a).find("--kv-heads"), std::string::npos) << arch_error(a);
  a = variant_arch(12, 0);
  a.mla_rope_dim = 3;
  EXPECT_NE(arch_error(a).find("even"), std::string::npos) << arch_error(a);
  a = variant_arch(0, 3);
  a.d_select = 8;
  EXPECT_NE(arch_error(a).find("thin keys"), std::string::npos) << arch_error(a);

  EXPECT_THROW(parse_hf_config(R"({"model_type":"llama","vocab_size":10,"hidden_size":8,
      "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":8,
      "attention_variant":{"kind":"sparse"}})",
                               "config.json"),
               Error);
}

TEST(Variants, UnsupportedPathsRefuseWithTheReason) {
  Model m = random_variant(variant_arch(12, 0), 2);
  auto says_mla = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what()).find("MLA attention") != std::string::npos;
    }
    return false;
  };
  CompressOptions o;
  o.method = CompressMethod::Svd;
  o.ranks.key_ratio = 0.5;
  EXPECT_TRUE(says_mla([&] { compress_model(m, o, {}, nullptr); }));
  EXPECT_THROW(prepare_for_training(m, TrainScope::QK), Error);
}

}  // namespace
}  // namespace thinkeys

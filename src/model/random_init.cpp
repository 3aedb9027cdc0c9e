#include "model/random_init.h"

namespace thinkeys {

Model random_model(const ModelConfig& config, uint64_t seed, double stddev) {
  config.validate();
  at::manual_seed(seed);
  const auto& c = config;
  auto normal = [&](std::vector<int64_t> shape) { return at::randn(shape, at::kFloat) * stddev; };
  auto ones_ish = [&](int64_t n) { return 1.0 + at::randn({n}, at::kFloat) * 0.1; };
  const int64_t D = c.dim, F = c.hidden_dim, d = c.head_dim;
  Model m;
  m.config = c;
  auto& w = m.weights;
  w.tok_emb = normal({c.vocab_size, D});
  if (c.positions == PositionKind::Learned) w.pos_emb = normal({c.max_positions, D});
  bool ln = c.norm == NormKind::LayerNorm;
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    const int64_t r = c.key_width(l);
    L.attn_norm = ones_ish(D);
    L.mlp_norm = ones_ish(D);
    if (ln) {
      L.attn_norm_bias = normal({D});
      L.mlp_norm_bias = normal({D});
    }
    if (c.is_standard_attention()) {
      L.wq = normal({c.n_heads * r, D});
      L.wk = normal({c.n_kv_heads * r, D});
      L.wv = normal({c.n_kv_heads * d, D});
    } else {
      // MLA / LRKV: their projections' own widths, their maps around attention.
      const int64_t H = c.n_heads;
      L.wq = normal({H * c.q_rows_per_head(l), D});
      L.wk = normal({c.k_rows(l), D});
      if (c.v_rows() > 0) L.wv = normal({c.v_rows(), D});
      if (c.is_mla()) {
        L.kv_norm = ones_ish(c.attention.latent);
        L.kv_up = normal({H * (c.attention.nope_dim + d), c.attention.latent});
      } else {
        const int64_t rank = c.attention.rank;
        L.k_res_down = normal({H * rank, D});
        L.v_res_down = normal({H * rank, D});
        L.k_res_up = normal({H * d, rank});
        L.v_res_up = normal({H * d, rank});
      }
    }
    L.wo = normal({D, c.n_heads * d});
    if (c.qkv_bias) {
      L.bq = normal({c.n_heads * r});
      L.bk = normal({c.n_kv_heads * r});
      L.bv = normal({c.n_kv_heads * d});
    }
    if (c.o_bias) L.bo = normal({D});
    if (c.mlp == MlpKind::SwiGLU) L.w_gate = normal({F, D});
    L.w_up = normal({F, D});
    L.w_down = normal({D, F});
    if (c.mlp_bias) {
      if (c.mlp == MlpKind::SwiGLU) L.b_gate = normal({F});
      L.b_up = normal({F});
      L.b_down = normal({D});
    }
    w.layers.push_back(std::move(L));
  }
  w.final_norm = ones_ish(D);
  if (ln) w.final_norm_bias = normal({D});
  if (!c.tied_embeddings) w.lm_head = normal({c.vocab_size, D});
  m.finalize();
  return m;
}

namespace {

void set_shape(ModelConfig& c, const ModelShape& s) {
  c.source_format = "random";
  c.vocab_size = s.vocab;
  c.dim = s.dim;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.hidden_dim = s.hidden;
  c.max_positions = s.max_positions;
}

}  // namespace

ModelConfig llama_config(const ModelShape& s) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  set_shape(c, s);
  return c;
}

ModelConfig gpt2_config(const ModelShape& s) {
  ModelConfig c;
  c.architecture = "GPT2LMHeadModel";
  c.model_type = "gpt2";
  set_shape(c, s);
  c.norm = NormKind::LayerNorm;
  c.norm_eps = 1e-5;
  c.mlp = MlpKind::GeluTanh;
  c.positions = PositionKind::Learned;
  c.tied_embeddings = true;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  c.bos_id = c.eos_id = 50256;
  return c;
}

ModelConfig gpt2_small_config() { return gpt2_config({50257, 768, 12, 12, 12, 64, 3072, 1024}); }

}  // namespace thinkeys

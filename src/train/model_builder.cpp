#include "train/model_builder.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "model/weights.h"
#include "util/error.h"

namespace thinkeys {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw Error("invalid model architecture: " + message);
}

std::string num(int64_t v) { return std::to_string(v); }

}  // namespace

int key_width_per_head(const ArchConfig& a) {
  int d = a.head_dim > 0 ? a.head_dim : (a.n_heads > 0 ? a.dim / a.n_heads : 0);
  return a.d_select > 0 && a.n_heads > 0 ? a.d_select / a.n_heads : d;
}

ModelConfig make_model_config(const ArchConfig& a) {
  require(a.arch == "gpt2" || a.arch == "llama",
          "unknown --arch '" + a.arch + "' (expected gpt2 or llama)");
  const bool gpt2 = a.arch == "gpt2";
  require(a.vocab_size > 0, "vocabulary size must be positive (is the tokenizer loaded?)");
  require(a.dim > 0, "width must be positive");
  require(a.n_layers > 0, "number of layers must be positive");
  require(a.n_heads > 0, "number of heads must be positive");
  require(a.ctx > 0, "context length must be positive");
  const int kv = a.n_kv_heads > 0 ? a.n_kv_heads : a.n_heads;
  require(a.n_heads % kv == 0,
          "KV heads (" + num(kv) + ") must divide the number of heads (" + num(a.n_heads) + ")");
  int d = a.head_dim;
  if (d <= 0 || gpt2) {
    require(a.dim % a.n_heads == 0,
            "heads (" + num(a.n_heads) + ") must divide the width (" + num(a.dim) + ")");
    require(!gpt2 || a.head_dim <= 0 || a.head_dim == a.dim / a.n_heads,
            "gpt2 requires head_dim = width / heads (" + num(a.dim / a.n_heads) + ")");
    d = a.dim / a.n_heads;
  }
  require(!gpt2 || kv == a.n_heads,
          "gpt2 has no grouped-query attention (KV heads must equal heads); use --arch llama");
  require(gpt2 || d % 2 == 0, "RoPE needs an even head dimension (got " + num(d) + ")");

  int r = d;
  if (a.d_select > 0) {
    require(a.d_select % a.n_heads == 0, "d_select (" + num(a.d_select) +
                                             ", total over heads) must be a multiple of the "
                                             "number of heads (" +
                                             num(a.n_heads) + ")");
    r = a.d_select / a.n_heads;
    require(r <= d, "d_select per head (" + num(r) + ") exceeds the head dimension (" + num(d) +
                        "); d_select is the total over heads, at most " + num(d * a.n_heads));
    require(gpt2 || r % 2 == 0,
            "RoPE on thin keys needs an even width per head (d_select / heads = " + num(r) + ")");
  } else {
    require(a.d_select == 0, "d_select must be positive");
  }

  require(a.mla_latent >= 0 && a.mla_rope_dim >= 0 && a.lrkv_rank >= 0,
          "MLA and LRKV sizes must be positive");
  require(!(a.mla_latent > 0 && a.lrkv_rank > 0), "choose MLA or LRKV, not both");
  require(a.mla_latent > 0 || a.mla_rope_dim == 0, "--mla-rope-dim needs --mla-latent");
  if (a.mla_latent > 0 || a.lrkv_rank > 0) {
    const char* kind = a.mla_latent > 0 ? "MLA" : "LRKV";
    require(!gpt2,
            std::string(kind) + " is built on the llama architecture (RoPE); use --arch llama");
    require(a.d_select == 0, std::string(kind) + " cannot be combined with thin keys (d_select)");
    require(kv == a.n_heads,
            std::string(kind) + " derives per-head keys and values itself; leave --kv-heads unset");
    require(a.lrkv_rank <= d,
            "LRKV rank (" + num(a.lrkv_rank) + ") exceeds the head dimension (" + num(d) + ")");
    const int dr = a.mla_rope_dim > 0 ? a.mla_rope_dim : d / 2;
    require(a.mla_latent == 0 || dr % 2 == 0,
            "MLA's RoPE key needs an even width (got " + num(dr) + ")");
  }

  ModelConfig c;
  c.architecture = gpt2 ? "GPT2LMHeadModel" : "LlamaForCausalLM";
  c.model_type = gpt2 ? "gpt2" : "llama";
  c.source_format = "trained";
  c.vocab_size = a.vocab_size;
  c.dim = a.dim;
  c.n_layers = a.n_layers;
  c.n_heads = a.n_heads;
  c.n_kv_heads = kv;
  c.head_dim = d;
  c.hidden_dim = a.hidden_dim > 0 ? a.hidden_dim
                 : gpt2           ? 4 * a.dim
                                  : (8 * a.dim / 3 + 31) / 32 * 32;
  c.max_positions = a.ctx;
  c.norm = gpt2 ? NormKind::LayerNorm : NormKind::RMSNorm;
  c.norm_eps = a.norm_eps;
  c.mlp = gpt2 ? MlpKind::GeluTanh : MlpKind::SwiGLU;
  c.positions = gpt2 ? PositionKind::Learned : PositionKind::Rope;
  c.rope_theta = a.rope_theta;
  c.tied_embeddings = a.tied_embeddings;
  c.qkv_bias = c.o_bias = c.mlp_bias = gpt2;
  c.bos_id = a.bos_id;
  c.eos_id = a.eos_id;
  if (r != d) c.key_rank.assign(a.n_layers, r);
  RopeTable table = RopeTable::KeyWidth;
  try {
    table = parse_rope_table(a.thin_rope_table);
  } catch (const Error& e) {
    require(false, std::string("thin_rope_table: ") + e.what());
  }
  if (r != d && !gpt2) c.rope_table = table;
  require(a.query_pre_attn_scalar >= 0, "query_pre_attn_scalar must be positive");
  if (a.query_pre_attn_scalar > 0) c.query_pre_attn_scalar = a.query_pre_attn_scalar;
  if (a.mla_latent > 0) {
    c.attention.kind = AttentionKind::MLA;
    c.attention.latent = a.mla_latent;
    c.attention.rope_dim = a.mla_rope_dim > 0 ? a.mla_rope_dim : d / 2;
    c.attention.nope_dim = d;
  } else if (a.lrkv_rank > 0) {
    c.attention.kind = AttentionKind::LRKV;
    c.attention.rank = a.lrkv_rank;
  }
  c.validate();
  return c;
}

Model init_model(const ModelConfig& c, uint64_t seed) {
  c.validate();
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const double std0 = 0.02, std_out = 0.02 / std::sqrt(2.0 * c.n_layers);
  auto normal = [&](std::vector<int64_t> shape, double stddev) {
    return at::normal(0.0, stddev, shape, gen, at::kFloat);
  };
  auto zeros = [](int64_t n) { return at::zeros({n}, at::kFloat); };
  auto ones = [](int64_t n) { return at::ones({n}, at::kFloat); };
  const int64_t D = c.dim, F = c.hidden_dim, d = c.head_dim, H = c.n_heads;
  const bool ln = c.norm == NormKind::LayerNorm;
  Model m;
  m.config = c;
  auto& w = m.weights;
  w.tok_emb = normal({c.vocab_size, D}, std0);
  if (c.positions == PositionKind::Learned) w.pos_emb = normal({c.max_positions, D}, std0);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    const int64_t qr = H * c.q_rows_per_head(l), kr = c.k_rows(l), vr = c.v_rows();
    L.attn_norm = ones(D);
    L.mlp_norm = ones(D);
    if (ln) {
      L.attn_norm_bias = zeros(D);
      L.mlp_norm_bias = zeros(D);
    }
    L.wq = normal({qr, D}, std0);
    L.wk = normal({kr, D}, std0);
    if (vr > 0) L.wv = normal({vr, D}, std0);
    if (c.is_mla()) {
      L.kv_norm = ones(c.attention.latent);
      L.kv_up = normal({H * (c.attention.nope_dim + d), c.attention.latent}, std0);
    } else if (c.is_lrkv()) {
      const int64_t r = c.attention.rank;
      L.k_res_down = normal({H * r, D}, std0);
      L.v_res_down = normal({H * r, D}, std0);
      L.k_res_up = normal({H * d, r}, std0);
      L.v_res_up = normal({H * d, r}, std0);
    }
    L.wo = normal({D, H * d}, std_out);
    if (c.qkv_bias) {
      L.bq = zeros(qr);
      L.bk = zeros(kr);
      L.bv = zeros(vr);
    }
    if (c.o_bias) L.bo = zeros(D);
    if (c.mlp == MlpKind::SwiGLU) L.w_gate = normal({F, D}, std0);
    L.w_up = normal({F, D}, std0);
    L.w_down = normal({D, F}, std_out);
    if (c.mlp_bias) {
      if (c.mlp == MlpKind::SwiGLU) L.b_gate = zeros(F);
      L.b_up = zeros(F);
      L.b_down = zeros(D);
    }
    w.layers.push_back(std::move(L));
  }
  w.final_norm = ones(D);
  if (ln) w.final_norm_bias = zeros(D);
  if (!c.tied_embeddings) w.lm_head = normal({c.vocab_size, D}, std0);
  m.finalize();
  return m;
}

}  // namespace thinkeys

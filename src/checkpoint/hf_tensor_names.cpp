#include "checkpoint/hf_tensor_names.h"

#include <utility>

namespace thinkeys {

at::Tensor& WeightSlot::in(Weights& w) const {
  return layer < 0 ? w.*model_field : w.layers[layer].*layer_field;
}

const at::Tensor& WeightSlot::in(const Weights& w) const {
  return layer < 0 ? w.*model_field : w.layers[layer].*layer_field;
}

namespace {

using Shape = std::vector<int64_t>;
using LW = LayerWeights;

enum class Stored { AsIs, Transposed };
enum class Presence { Required, Optional };

class TableBuilder {
 public:
  explicit TableBuilder(HfTensorTable& table) : table_(table) {}

  void model(std::string name, at::Tensor Weights::*field, Shape shape) {
    table_.tensors.push_back({std::move(name), std::move(shape), false, {{-1, nullptr, field, 0}}});
  }

  // Layer tensors; `prefix` is the family's per-layer prefix, e.g. "model.layers.3.".
  void layer(const std::string& name, at::Tensor LW::*field, Shape shape,
             Stored stored = Stored::AsIs, Presence presence = Presence::Required) {
    table_.tensors.push_back({prefix_ + name,
                              std::move(shape),
                              stored == Stored::Transposed,
                              {{layer_, field, nullptr, 0}},
                              presence == Presence::Optional});
  }

  void fused(const std::string& name, Shape shape, Stored stored,
             std::initializer_list<std::pair<at::Tensor LW::*, int64_t>> parts) {
    HfTensor t{prefix_ + name, std::move(shape), stored == Stored::Transposed, {}};
    for (auto [field, rows] : parts) t.parts.push_back({layer_, field, nullptr, rows});
    table_.tensors.push_back(std::move(t));
  }

  void start_layer(int layer, std::string prefix) {
    layer_ = layer;
    prefix_ = std::move(prefix);
  }

 private:
  HfTensorTable& table_;
  int layer_ = -1;
  std::string prefix_;
};

// Thin-key maps (model/weights.h, RopeMode), under the attention module's name.
void thin_maps(TableBuilder& b, const ModelConfig& c, int layer, const std::string& attn) {
  const int64_t nk = c.key_heads(), sd = static_cast<int64_t>(c.key_share()) * c.head_dim;
  const int64_t rk = c.key_width(layer);
  if (c.rope_mode() == RopeMode::Post) {
    b.layer(attn + "k_down.weight", &LW::k_down, {nk, sd, rk});
    b.layer(attn + "q_down.weight", &LW::q_down, {c.n_heads, c.head_dim, rk});
  } else if (c.rope_mode() == RopeMode::Latent) {
    b.layer(attn + "k_up.weight", &LW::k_up, {nk, sd, rk});
  }
}

void gpt2_table(const ModelConfig& c, TableBuilder& b) {
  const int64_t D = c.dim, F = c.hidden_dim;
  const auto T = Stored::Transposed;
  b.model("transformer.wte.weight", &Weights::tok_emb, {c.vocab_size, D});
  b.model("transformer.wpe.weight", &Weights::pos_emb, {c.max_positions, D});
  for (int i = 0; i < c.n_layers; ++i) {
    b.start_layer(i, "transformer.h." + std::to_string(i) + ".");
    const int64_t nq = expected_shape_q(c, i)[0], nk = expected_shape_k(c, i)[0];
    b.layer("ln_1.weight", &LW::attn_norm, {D});
    b.layer("ln_1.bias", &LW::attn_norm_bias, {D});
    // Conv1D: [in, out], the output fused as [q | k | v].
    b.fused("attn.c_attn.weight", {D, nq + nk + D}, T,
            {{&LW::wq, nq}, {&LW::wk, nk}, {&LW::wv, D}});
    b.fused("attn.c_attn.bias", {nq + nk + D}, Stored::AsIs,
            {{&LW::bq, nq}, {&LW::bk, nk}, {&LW::bv, D}});
    thin_maps(b, c, i, "attn.");
    b.layer("attn.c_proj.weight", &LW::wo, {D, D}, T);
    b.layer("attn.c_proj.bias", &LW::bo, {D});
    b.layer("ln_2.weight", &LW::mlp_norm, {D});
    b.layer("ln_2.bias", &LW::mlp_norm_bias, {D});
    b.layer("mlp.c_fc.weight", &LW::w_up, {D, F}, T);
    b.layer("mlp.c_fc.bias", &LW::b_up, {F});
    b.layer("mlp.c_proj.weight", &LW::w_down, {F, D}, T);
    b.layer("mlp.c_proj.bias", &LW::b_down, {D});
  }
  b.model("transformer.ln_f.weight", &Weights::final_norm, {D});
  b.model("transformer.ln_f.bias", &Weights::final_norm_bias, {D});
}

// Llama, Mistral and Qwen2 (q/k/v biases); MLA with DeepSeek-V2's names
// (without its optional query LoRA); LRKV's residual factors.
void llama_table(const ModelConfig& c, TableBuilder& b) {
  const int64_t D = c.dim, F = c.hidden_dim, d = c.head_dim;
  b.model("model.embed_tokens.weight", &Weights::tok_emb, {c.vocab_size, D});
  for (int i = 0; i < c.n_layers; ++i) {
    b.start_layer(i, "model.layers." + std::to_string(i) + ".");
    const int64_t nq = expected_shape_q(c, i)[0], nk = expected_shape_k(c, i)[0];
    b.layer("input_layernorm.weight", &LW::attn_norm, {D});
    b.layer("self_attn.q_proj.weight", &LW::wq, {nq, D});
    if (c.is_mla()) {
      const int64_t dc = c.attention.latent;
      b.layer("self_attn.kv_a_proj_with_mqa.weight", &LW::wk, {nk, D});
      b.layer("self_attn.kv_a_layernorm.weight", &LW::kv_norm, {dc});
      b.layer("self_attn.kv_b_proj.weight", &LW::kv_up,
              {c.n_heads * (c.attention.nope_dim + d), dc});
    } else {
      b.layer("self_attn.k_proj.weight", &LW::wk, {nk, D});
      b.layer("self_attn.v_proj.weight", &LW::wv, {c.v_rows(), D});
    }
    if (c.is_lrkv()) {
      const int64_t hr = c.n_heads * c.attention.rank, hd = c.n_heads * d, rk = c.attention.rank;
      b.layer("self_attn.k_res_a_proj.weight", &LW::k_res_down, {hr, D});
      b.layer("self_attn.k_res_b_proj.weight", &LW::k_res_up, {hd, rk});
      b.layer("self_attn.v_res_a_proj.weight", &LW::v_res_down, {hr, D});
      b.layer("self_attn.v_res_b_proj.weight", &LW::v_res_up, {hd, rk});
    }
    b.layer("self_attn.o_proj.weight", &LW::wo, {D, c.n_heads * d});
    thin_maps(b, c, i, "self_attn.");
    if (c.qkv_bias) {
      b.layer("self_attn.q_proj.bias", &LW::bq, {nq});
      b.layer("self_attn.k_proj.bias", &LW::bk, {nk}, Stored::AsIs,
              c.thin_keys ? Presence::Optional : Presence::Required);
      b.layer("self_attn.v_proj.bias", &LW::bv, {c.n_kv_heads * d});
    }
    if (c.o_bias) b.layer("self_attn.o_proj.bias", &LW::bo, {D});
    b.layer("post_attention_layernorm.weight", &LW::mlp_norm, {D});
    b.layer("mlp.gate_proj.weight", &LW::w_gate, {F, D});
    b.layer("mlp.up_proj.weight", &LW::w_up, {F, D});
    b.layer("mlp.down_proj.weight", &LW::w_down, {D, F});
    if (c.mlp_bias) {
      b.layer("mlp.gate_proj.bias", &LW::b_gate, {F});
      b.layer("mlp.up_proj.bias", &LW::b_up, {F});
      b.layer("mlp.down_proj.bias", &LW::b_down, {D});
    }
  }
  b.model("model.norm.weight", &Weights::final_norm, {D});
}

}  // namespace

HfTensorTable hf_tensor_table(const ModelConfig& c) {
  HfTensorTable table;
  TableBuilder b(table);
  if (c.model_type == "gpt2") {
    table.droppable_prefix = "transformer.";
    gpt2_table(c, b);
  } else {
    llama_table(c, b);
  }
  // Outside the family's prefix in every family.
  if (!c.tied_embeddings) b.model("lm_head.weight", &Weights::lm_head, {c.vocab_size, c.dim});
  return table;
}

}  // namespace thinkeys

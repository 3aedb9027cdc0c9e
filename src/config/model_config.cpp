#include "config/model_config.h"

#include <cmath>

#include "util/enum_names.h"
#include "util/error.h"

namespace thinkeys {

bool ModelConfig::has_thin_keys() const {
  for (int r : key_rank)
    if (r != head_dim) return true;
  return false;
}

void ModelConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw Error("invalid model config: " + what);
  };
  require(vocab_size > 0, "vocab_size must be positive");
  require(dim > 0, "hidden size must be positive");
  require(n_layers > 0, "number of layers must be positive");
  require(n_heads > 0, "number of attention heads must be positive");
  require(n_kv_heads > 0, "number of key/value heads must be positive");
  require(n_heads % n_kv_heads == 0, "num_attention_heads (" + std::to_string(n_heads) +
                                         ") is not a multiple of num_key_value_heads (" +
                                         std::to_string(n_kv_heads) + ")");
  require(head_dim > 0, "head_dim must be positive");
  require(hidden_dim > 0, "intermediate size must be positive");
  require(max_positions > 0, "max_position_embeddings must be positive");
  require(norm_eps > 0, "norm epsilon must be positive");
  if (positions == PositionKind::Rope) {
    require(head_dim % 2 == 0, "RoPE needs an even head_dim");
    require(rope_theta > 0, "rope_theta must be positive");
  }
  require(!sliding_window || *sliding_window > 0, "sliding_window must be positive");
  require(!query_pre_attn_scalar || *query_pre_attn_scalar > 0,
          "query_pre_attn_scalar must be positive");
  require(key_rank.empty() || static_cast<int>(key_rank.size()) == n_layers,
          "key_rank must list one rank per layer");
  const int share = key_share();
  require(share >= 1 && n_kv_heads % share == 0,
          "thin_keys.share must divide the number of KV heads");
  for (int r : key_rank)
    require(r >= 1 && r <= head_dim * share, "key rank " + std::to_string(r) + " outside [1, " +
                                                 std::to_string(head_dim * share) + "]");
  if (rope_mode() == RopeMode::Pairs) {
    require(positions == PositionKind::Rope, "RoPE mode 'pairs' needs a RoPE model");
    require(share == 1, "RoPE mode 'pairs' keeps planes per KV head (share must be 1)");
    require(static_cast<int>(rope_planes.size()) == n_layers, "rope_planes must list every layer");
    for (int l = 0; l < n_layers; ++l) {
      require(key_width(l) % 2 == 0, "RoPE mode 'pairs' needs even key ranks");
      require(static_cast<int>(rope_planes[l].size()) == n_kv_heads,
              "rope_planes: one list per KV head");
      for (const auto& planes : rope_planes[l]) {
        require(static_cast<int>(planes.size()) == key_width(l) / 2,
                "rope_planes: r/2 planes per head");
        for (int p : planes) require(p >= 0 && p < head_dim / 2, "rope_planes: plane out of range");
      }
    }
  }
  if (!is_standard_attention()) {
    const std::string kind = to_string(attention.kind);
    require(positions == PositionKind::Rope, kind + " needs a RoPE (Llama-style) model");
    require(key_rank.empty() && !thin_keys, kind + " cannot also have thin keys");
    require(!qkv_bias, kind + " has no query/key/value biases");
    require(n_kv_heads == n_heads, kind +
                                       " derives per-head keys and values itself: "
                                       "num_key_value_heads must equal num_attention_heads");
    if (is_mla()) {
      require(attention.latent > 0, "MLA kv_lora_rank must be positive");
      require(attention.rope_dim > 0 && attention.rope_dim % 2 == 0,
              "MLA qk_rope_head_dim must be positive and even");
      require(attention.nope_dim > 0, "MLA qk_nope_head_dim must be positive");
    } else {
      require(attention.rank >= 1 && attention.rank <= head_dim,
              "LRKV rank " + std::to_string(attention.rank) +
                  " outside [1, head_dim = " + std::to_string(head_dim) + "]");
    }
  }
  if (rope_table == RopeTable::KeyWidth)
    require(
        positions == PositionKind::Rope && rope_mode() == RopeMode::Full && is_standard_attention(),
        "rope_table 'key_width' applies to trained thin keys on a RoPE model (RoPE mode full)");
  if (positions == PositionKind::Rope && rope_mode() == RopeMode::Full)
    for (int l = 0; l < n_layers; ++l)
      require(
          key_width(l) % 2 == 0 && share == 1 && key_width(l) <= head_dim,
          "thin keys on a RoPE model need a RoPE mode (post, latent or pairs) or an even width");
}

void ModelConfig::require_standard_attention(const std::string& feature) const {
  if (!is_standard_attention())
    throw Error(feature + " supports MHA, GQA, MQA and thin-key models; this model uses " +
                to_string(attention.kind) +
                " attention (generate, serve, eval and train "
                "support it)");
}

double ModelConfig::score_scale() const {
  if (query_pre_attn_scalar) return 1.0 / std::sqrt(*query_pre_attn_scalar);
  const int width = is_mla() ? attention.nope_dim + attention.rope_dim : head_dim;
  return 1.0 / std::sqrt(static_cast<double>(width));
}

int ModelConfig::cache_key_heads(int) const { return is_standard_attention() ? key_heads() : 1; }
int ModelConfig::cache_key_width(int layer) const {
  if (is_mla()) return attention.latent + attention.rope_dim;
  if (is_lrkv()) return head_dim + n_heads * attention.rank;
  return key_width(layer);
}
int ModelConfig::cache_value_heads() const { return is_mla() ? 0 : is_lrkv() ? 1 : n_kv_heads; }
int ModelConfig::cache_value_width() const {
  return is_mla() ? 0 : is_lrkv() ? head_dim + n_heads * attention.rank : head_dim;
}
int ModelConfig::v_rows() const {
  return is_mla() ? 0 : is_lrkv() ? head_dim : n_kv_heads * head_dim;
}

int ModelConfig::q_rows_per_head(int layer) const {
  if (is_mla()) return attention.nope_dim + attention.rope_dim;
  if (is_lrkv()) return head_dim;
  auto m = rope_mode();
  return m == RopeMode::Post || m == RopeMode::Latent ? head_dim : key_width(layer);
}

int ModelConfig::k_rows(int layer) const {
  if (is_mla()) return attention.latent + attention.rope_dim;
  if (is_lrkv()) return head_dim;
  return rope_mode() == RopeMode::Post ? n_kv_heads * head_dim : key_heads() * key_width(layer);
}

int64_t ModelConfig::kv_bytes_per_token_layer(int layer, double key_bytes,
                                              double value_bytes) const {
  // MLA's latent is both key and value: it is stored once, at the key dtype.
  return static_cast<int64_t>(std::llround(
      static_cast<double>(cache_key_heads(layer)) * cache_key_width(layer) * key_bytes +
      static_cast<double>(cache_value_heads()) * cache_value_width() * value_bytes));
}

int64_t ModelConfig::kv_bytes_per_token(double key_bytes, double value_bytes) const {
  int64_t total = 0;
  for (int l = 0; l < n_layers; ++l) total += kv_bytes_per_token_layer(l, key_bytes, value_bytes);
  return total;
}

namespace {
constexpr EnumName<AttentionKind> kAttentionKinds[] = {{AttentionKind::Standard, "standard"},
                                                       {AttentionKind::MLA, "MLA"},
                                                       {AttentionKind::LRKV, "LRKV"}};
constexpr EnumName<RopeMode> kRopeModes[] = {{RopeMode::Full, "full"},
                                             {RopeMode::Post, "post"},
                                             {RopeMode::Latent, "latent"},
                                             {RopeMode::Pairs, "pairs"}};
constexpr EnumName<RopeTable> kRopeTables[] = {{RopeTable::HeadDim, "head_dim"},
                                               {RopeTable::KeyWidth, "key_width"}};
}  // namespace

const char* to_string(AttentionKind k) { return enum_name<AttentionKind>(kAttentionKinds, k); }

const char* to_string(NormKind k) { return k == NormKind::LayerNorm ? "LayerNorm" : "RMSNorm"; }
const char* to_string(MlpKind k) { return k == MlpKind::GeluTanh ? "GELU(tanh)" : "SwiGLU"; }
const char* to_string(RopeMode m) { return enum_name<RopeMode>(kRopeModes, m); }
const char* to_string(RopeTable t) { return enum_name<RopeTable>(kRopeTables, t); }

RopeTable parse_rope_table(const std::string& s) {
  return parse_enum<RopeTable>(kRopeTables, s, "RoPE table");
}

RopeMode parse_rope_mode(const std::string& s) {
  return parse_enum<RopeMode>(kRopeModes, s, "RoPE mode");
}

const char* to_string(PositionKind k) {
  return k == PositionKind::Learned ? "learned positions" : "RoPE";
}

}  // namespace thinkeys

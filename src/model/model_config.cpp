#include "model/model_config.h"

#include <cmath>

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
  require(key_rank.empty() || static_cast<int>(key_rank.size()) == n_layers,
          "key_rank must list one rank per layer");
  for (int r : key_rank)
    require(r >= 1 && r <= head_dim, "key rank " + std::to_string(r) + " outside [1, head_dim]");
}

int64_t ModelConfig::kv_bytes_per_token_layer(int layer, double key_bytes,
                                              double value_bytes) const {
  return static_cast<int64_t>(
      std::llround(n_kv_heads * (key_width(layer) * key_bytes + head_dim * value_bytes)));
}

int64_t ModelConfig::kv_bytes_per_token(double key_bytes, double value_bytes) const {
  int64_t total = 0;
  for (int l = 0; l < n_layers; ++l) total += kv_bytes_per_token_layer(l, key_bytes, value_bytes);
  return total;
}

const char* to_string(NormKind k) { return k == NormKind::LayerNorm ? "LayerNorm" : "RMSNorm"; }
const char* to_string(MlpKind k) { return k == MlpKind::GeluTanh ? "GELU(tanh)" : "SwiGLU"; }
const char* to_string(PositionKind k) {
  return k == PositionKind::Learned ? "learned positions" : "RoPE";
}

}  // namespace thinkeys

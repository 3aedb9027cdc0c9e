#pragma once
// Architecture description shared by loaders, the forward pass, compression and
// the CLI. Torch-free on purpose: most translation units only need shapes.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace thinkeys {

enum class NormKind { LayerNorm, RMSNorm };
enum class MlpKind { GeluTanh, SwiGLU };
enum class PositionKind { Learned, Rope };

struct ModelConfig {
  std::string architecture;   // Hugging Face class name, e.g. "LlamaForCausalLM"
  std::string model_type;     // "gpt2", "llama", "mistral", "qwen2"
  std::string source_format;  // where it was loaded from: "safetensors" or "llama2c"
  std::string weight_dtype = "float32";  // dtype as stored on disk

  int vocab_size = 0;
  int dim = 0;  // residual width D
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;    // value (and full key) width per head
  int hidden_dim = 0;  // MLP inner width
  int max_positions = 0;

  NormKind norm = NormKind::RMSNorm;
  double norm_eps = 1e-5;
  MlpKind mlp = MlpKind::SwiGLU;
  PositionKind positions = PositionKind::Rope;
  double rope_theta = 10000.0;
  std::optional<int> sliding_window;  // attend to at most this many most recent tokens

  bool tied_embeddings = false;
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;

  std::optional<int> bos_id;
  std::optional<int> eos_id;

  // Cached key width per KV head, per layer. Equals head_dim for an ordinary
  // model; thin-key models store fewer dimensions.
  std::vector<int> key_rank;

  int group_size() const { return n_heads / n_kv_heads; }
  int key_width(int layer) const { return key_rank.empty() ? head_dim : key_rank[layer]; }
  bool has_thin_keys() const;

  // Checks internal consistency; throws Error naming the offending field.
  void validate() const;

  // Cache bytes per token for one layer and in total, for given element sizes.
  int64_t kv_bytes_per_token_layer(int layer, double key_bytes, double value_bytes) const;
  int64_t kv_bytes_per_token(double key_bytes, double value_bytes) const;
};

const char* to_string(NormKind k);
const char* to_string(MlpKind k);
const char* to_string(PositionKind k);

}  // namespace thinkeys

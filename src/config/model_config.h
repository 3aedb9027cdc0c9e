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

// How a thin key meets rotary embeddings (docs/design.md section 4).
//   Full:   ordinary RoPE on q and k of the cached width (also for models
//           without RoPE, where nothing is rotated).
//   Post:   rotate full-width q and k, then project: the cache holds A^T R k.
//   Latent: the cache holds the pre-rotation latent A^T k; attention
//           reconstructs P c, rotates it and dots it with the rotated query.
//   Pairs:  keep r/2 whole frequency planes per KV head; rotate those.
enum class RopeMode { Full, Post, Latent, Pairs };

// Which frequencies rotate a thin key's r dims in Full mode on a RoPE model.
//   HeadDim:  the first r/2 planes of the head_dim table, i.e. the fastest
//             ones. At r = d/8 only periods of a few tokens remain, so the
//             key loses the slow planes that carry long-range position.
//             Models trained before this choice existed mean this.
//   KeyWidth: a table over r itself, theta^(-2i/r), spanning the same range
//             of periods as a full head (for d/r integer it is every
//             (d/r)-th plane of the head_dim table).
enum class RopeTable { HeadDim, KeyWidth };

// Attention designs trained from scratch beside MHA/GQA/MQA/thin keys
// (docs/design.md section 6). Both cache one shared row per token and layer, so the
// runtime sees a single cached "head" whose width the helpers below report.
//   MLA:  DeepSeek-V2 latent attention. Cache [RMSNorm(c) ; rotated k_rope]
//         (latent + rope_dim); the key/value up-projections are absorbed into
//         the query and the output at decode. head_dim is the value width.
//   LRKV: shared full-rank key/value head plus per-head rank-r residuals.
//         Cache [rotated k_shared ; z_1..z_H] and [v_shared ; y_1..y_H]. RoPE
//         acts on the shared key only, so the residual's query side absorbs
//         (score = R q . R k_s + (U_h^T q) . z_h) and nothing is rebuilt.
enum class AttentionKind { Standard, MLA, LRKV };

struct AttentionVariant {
  AttentionKind kind = AttentionKind::Standard;
  int latent = 0;    // MLA: kv_lora_rank d_c
  int rope_dim = 0;  // MLA: decoupled RoPE key width d_R (shared by all heads)
  int nope_dim = 0;  // MLA: per-head query/key width without RoPE
  int rank = 0;      // LRKV: residual rank r per head
};

// Provenance of a compressed key cache (config.json "thin_keys").
struct ThinKeysInfo {
  std::string method;  // "svd", "kqsvd", "keypca"
  std::string target = "keys";
  RopeMode rope = RopeMode::Full;
  int share = 1;  // KV heads that share one cached key latent
};

struct ModelConfig {
  std::string architecture;              // Hugging Face class name, e.g. "LlamaForCausalLM"
  std::string model_type;                // "gpt2", "llama", "mistral", "qwen2"
  std::string source_format;             // where it was loaded from: "safetensors" or "llama2c"
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
  std::optional<int> sliding_window;
  // Scores are scaled by query_pre_attn_scalar^(-1/2) when set (the Hugging
  // Face name, from Gemma 2), else by head_dim^(-1/2). Thin keys trained from
  // scratch use it to scale by their own width, as the paper does.
  std::optional<double> query_pre_attn_scalar;  // attend to at most this many most recent tokens

  bool tied_embeddings = false;
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;

  std::optional<int> bos_id;
  std::optional<int> eos_id;

  // Cached key width per key head, per layer. Equals head_dim for an ordinary
  // model; thin-key models store fewer dimensions.
  std::vector<int> key_rank;
  std::optional<ThinKeysInfo> thin_keys;
  // Pairs mode: kept RoPE frequency planes, [layer][kv head][r/2].
  std::vector<std::vector<std::vector<int>>> rope_planes;
  RopeTable rope_table = RopeTable::HeadDim;
  AttentionVariant attention;

  bool is_mla() const { return attention.kind == AttentionKind::MLA; }
  bool is_lrkv() const { return attention.kind == AttentionKind::LRKV; }
  bool is_standard_attention() const { return attention.kind == AttentionKind::Standard; }
  // Throws a clear Error naming `feature` for MLA/LRKV models, which decoding,
  // serving, training and evaluation support but key compression does not.
  void require_standard_attention(const std::string& feature) const;
  // Softmax temperature: 1/sqrt of the width the scores were trained with.
  double score_scale() const;
  // Width the RoPE frequency table is built for (MLA rotates only rope_dim).
  int rope_table_dim() const { return is_mla() ? attention.rope_dim : head_dim; }
  // Physical runtime cache layout per layer: heads x width per token.
  int cache_key_heads(int layer) const;
  int cache_key_width(int layer) const;
  int cache_value_heads() const;
  int cache_value_width() const;
  // Rows of W_V (0 for MLA, whose values come from the cached latent).
  int v_rows() const;

  int group_size() const { return n_heads / n_kv_heads; }
  int key_width(int layer) const { return key_rank.empty() ? head_dim : key_rank[layer]; }
  RopeMode rope_mode() const { return thin_keys ? thin_keys->rope : RopeMode::Full; }
  int key_share() const { return thin_keys ? thin_keys->share : 1; }
  // Number of cached key heads per layer (KV heads / share).
  int key_heads() const { return n_kv_heads / key_share(); }
  // Rows of W_Q per query head and of W_K in total: full width where the
  // projection happens after rotation (Post) or the key is rebuilt (Latent).
  int q_rows_per_head(int layer) const;
  int k_rows(int layer) const;
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
const char* to_string(RopeMode m);
const char* to_string(RopeTable t);
const char* to_string(AttentionKind k);
RopeMode parse_rope_mode(const std::string& s);    // throws Error on unknown names
RopeTable parse_rope_table(const std::string& s);  // "head_dim" or "key_width"

}  // namespace thinkeys

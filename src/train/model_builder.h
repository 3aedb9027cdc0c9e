#pragma once
// Fresh models for training from scratch: a small architecture description
// (what `thinkeys train` takes as flags or JSON) becomes a validated
// ModelConfig, and a ModelConfig becomes freshly initialised weights.
//
// Thin keys here are the paper's "d_select" models: queries and keys have r
// dimensions per head (RoPE on those r dims, RopeMode::Full), values keep the
// full head_dim. The runtime loads and runs them like any other checkpoint.
#include <cstdint>
#include <optional>
#include <string>

#include "config/model_config.h"

namespace thinkeys {

struct Model;  // model/weights.h

struct ArchConfig {
  std::string arch = "llama";  // "gpt2" (LayerNorm, GELU, learned positions, biases)
                               // or "llama" (RMSNorm, SwiGLU, RoPE, no biases)
  int vocab_size = 0;
  int dim = 256;
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 0;  // 0: same as n_heads (MHA); 1 is MQA; gpt2 allows only MHA
  int head_dim = 0;    // 0: dim / n_heads; gpt2 requires exactly that
  // Thin keys: total query/key width summed over query heads (the paper's
  // d_select), so r = d_select / n_heads per head. 0: ordinary attention.
  int d_select = 0;
  // MLA (DeepSeek-V2): cached latent width d_c; > 0 selects MLA. The decoupled
  // RoPE key has mla_rope_dim dims (0: head_dim / 2); the per-head query/key
  // part without RoPE has head_dim dims.
  int mla_latent = 0;
  int mla_rope_dim = 0;
  // LRKV: per-head residual rank r over a shared key/value head; > 0 selects LRKV.
  int lrkv_rank = 0;
  // Scores scale by this^(-1/2) (0: head_dim). The paper scales thin keys by
  // their own width: set it to d_select / heads for that.
  double query_pre_attn_scalar = 0;
  // RoPE frequencies for thin keys (RopeTable): "key_width" gives the r dims a
  // table over r spanning all periods; "head_dim" (the only choice before
  // 2026-11) keeps the r/2 fastest planes of the head_dim table.
  std::string thin_rope_table = "key_width";
  int hidden_dim = 0;  // 0: 4*dim (gpt2) or 8/3*dim rounded up to a multiple of 32 (llama)
  int ctx = 256;       // maximum positions
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tied_embeddings = true;
  std::optional<int> bos_id, eos_id;
};

// Checks everything and throws one Error naming the problem (heads not
// dividing the width, KV heads not dividing heads, d_select too wide or not
// divisible, ...). The result passes ModelConfig::validate().
ModelConfig make_model_config(const ArchConfig& arch);

// Per-head key width r implied by `arch` (head_dim when d_select is 0).
int key_width_per_head(const ArchConfig& arch);

// Weights for training from scratch: Linear and embedding weights N(0, 0.02),
// the two residual output projections (W_O, W_down) N(0, 0.02/sqrt(2 L)) as
// in GPT-2, norms 1, biases 0. Deterministic in `seed` (own generator, so the
// global torch RNG is untouched). The model is finalized (runtime-ready).
Model init_model(const ModelConfig& config, uint64_t seed);

}  // namespace thinkeys

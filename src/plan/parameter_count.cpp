#include "plan/parameter_count.h"

namespace thinkeys {

ParameterCount count_parameters(const ModelConfig& c) {
  const int64_t D = c.dim, F = c.hidden_dim, V = c.vocab_size, d = c.head_dim, H = c.n_heads;
  const bool layer_norm = c.norm == NormKind::LayerNorm;
  int64_t layers = 0, maps = 0;
  for (int l = 0; l < c.n_layers; ++l) {
    int64_t n = (layer_norm ? 4 : 2) * D;  // two norms, with biases for LayerNorm
    const int64_t nq = H * c.q_rows_per_head(l), nk = c.k_rows(l), nv = c.v_rows();
    n += (nq + nk + nv) * D;
    // The bias the loader reads (a thin-key checkpoint may omit the key's;
    // the runtime then holds zeros in its place, so it still counts).
    if (c.qkv_bias) n += nq + nk + nv;
    n += D * H * d + (c.o_bias ? D : 0);
    if (c.is_mla()) {
      n += c.attention.latent;                                                 // kv_a_layernorm
      const int64_t up = H * (c.attention.nope_dim + d) * c.attention.latent;  // kv_b_proj
      n += up;
      maps += up;
    } else if (c.is_lrkv()) {
      const int64_t up = 2 * H * d * c.attention.rank;  // the residuals' up factors
      n += 2 * H * c.attention.rank * D + up;           // and their down factors
      maps += up;
    }
    const int64_t r = c.key_width(l), key_heads = c.key_heads(),
                  shared = static_cast<int64_t>(c.key_share()) * d;
    if (c.rope_mode() == RopeMode::Post) n += key_heads * shared * r + H * d * r;
    if (c.rope_mode() == RopeMode::Latent) n += key_heads * shared * r;
    const bool swiglu = c.mlp == MlpKind::SwiGLU;
    n += (swiglu ? 3 : 2) * D * F;
    if (c.mlp_bias) n += (swiglu ? 2 : 1) * F + D;
    layers += n;
  }
  const int64_t embedding = V * D;
  const int64_t positions = c.positions == PositionKind::Learned ? int64_t{c.max_positions} * D : 0;
  const int64_t final_norm = (layer_norm ? 2 : 1) * D;
  const int64_t head = c.tied_embeddings ? 0 : V * D;
  ParameterCount out;
  out.total = embedding + positions + layers + final_norm + head;
  out.per_step = layers + final_norm + V * D;  // the head, tied or not, is read whole
  out.float_maps = maps;
  return out;
}

}  // namespace thinkeys

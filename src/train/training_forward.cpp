#include "train/training_forward.h"

#include <cmath>

#include "model/attention_variants.h"
#include "model/layer_ops.h"
#include "model/query_keys.h"
#include "util/error.h"

namespace thinkeys {
namespace {

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

// q [B, T, H, w], K [B, S, nk, w], V [B, S, Hkv, d] -> [B, T, H*d]. Query head
// h reads key head h / (H/nk) and value head h / (H/Hkv), as in the runtime.
// The query heads that share a key head are stacked along the rows of one
// GEMM, so shared keys are never copied per query head. One baddbmm per layer
// adds the mask and applies the score scale (BLAS alpha) inside the GEMM: no
// separate passes over the [T, S] scores forward or backward, and the scale's
// gradient lands on the small [T, w] query side.
at::Tensor attend(const ModelConfig& c, const at::Tensor& q, const at::Tensor& K,
                  const at::Tensor& V, const at::Tensor& mask) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), w = q.size(3);
  const int64_t S = K.size(1), nk = K.size(2), Hkv = V.size(2), d = V.size(3);
  const int64_t g = H / nk, gv = H / Hkv;
  at::Tensor qg = q.reshape({B, T, nk, g, w}).permute({0, 2, 3, 1, 4}).reshape({B * nk, g * T, w});
  at::Tensor kt = K.permute({0, 2, 3, 1}).reshape({B * nk, w, S});
  at::Tensor rows = g == 1 ? mask : mask.repeat({g, 1});                // [g*T, S]
  at::Tensor scores = at::baddbmm(rows, qg, kt, 1.0, c.score_scale());  // [B*nk, g*T, S]
  // Row-major [B, H, T, S] either way, so regrouping by value head is a view.
  at::Tensor probs = at::softmax(scores, -1).view({B * Hkv, gv * T, S});
  at::Tensor v = V.permute({0, 2, 1, 3}).reshape({B * Hkv, S, d});
  return at::bmm(probs, v).view({B, H, T, d}).permute({0, 2, 1, 3}).reshape({B, T, H * d});
}

at::Tensor attention(const Model& model, int l, const at::Tensor& h, const RopeAngles& angles,
                     const at::Tensor& mask) {
  const ModelConfig& c = model.config;
  const LayerWeights& L = model.weights.layers[l];
  const int64_t B = h.size(0), T = h.size(1), H = c.n_heads, Hkv = c.n_kv_heads, d = c.head_dim;
  if (!c.is_standard_attention()) {
    // Training keeps the parts separate (the fused copy is dropped for autograd).
    std::vector<at::Tensor> parts;
    for (const at::Tensor* t : {&L.wq, &L.wk, &L.wv, &L.k_res_down, &L.v_res_down})
      if (t->defined()) parts.push_back(*t);
    VariantProjections p = split_variant_projections(c, at::linear(h, at::cat(parts, 0)));
    return variant_attend(c, L, p.q, variant_key_rows(c, L, p, angles.cos, angles.sin),
                          variant_value_rows(c, p), angles.cos, angles.sin, mask);
  }

  at::Tensor q = linear(h, L.wq, L.bq).view({B, T, H, c.q_rows_per_head(l)});
  at::Tensor v = linear(h, L.wv, L.bv).view({B, T, Hkv, d});
  QueryKeys qk = prepare_query_keys(c, L, l, q, linear(h, L.wk, L.bk), angles);
  if (c.rope_mode() == RopeMode::Latent)
    return attend(c, qk.q, latent_keys(c, L, qk.k, angles), v, mask);
  return attend(c, qk.q, qk.k, v, mask);
}

}  // namespace

at::Tensor training_forward(const Model& model, const at::Tensor& tokens) {
  const ModelConfig& c = model.config;
  const auto& w = model.weights;
  if (tokens.dim() != 2) throw Error("training_forward: tokens must be [batch, time]");
  const int64_t B = tokens.size(0), T = tokens.size(1);
  if (B == 0 || T == 0) throw Error("training_forward: empty batch");
  if (c.positions == PositionKind::Learned && T > c.max_positions)
    throw Error("sequence of " + std::to_string(T) +
                " tokens exceeds the model's learned positions (" +
                std::to_string(c.max_positions) + ")");
  at::Tensor ids = tokens.to(at::kLong);
  if (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= c.vocab_size)
    throw Error("token id outside the vocabulary (" + std::to_string(c.vocab_size) + ")");

  at::Tensor x = at::embedding(w.tok_emb, ids);  // [B, T, D]
  if (c.positions == PositionKind::Learned) x = x + w.pos_emb.narrow(0, 0, T);

  const RopeAngles angles = rope_angles(c, model.rope_inv_freq, at::arange(0, T, at::kFloat));

  // Causal (and sliding-window) additive mask, as in the runtime.
  at::Tensor qpos = at::arange(0, T, at::kLong).unsqueeze(1);
  at::Tensor kpos = at::arange(0, T, at::kLong).unsqueeze(0);
  at::Tensor blocked = kpos > qpos;
  if (c.sliding_window) blocked = blocked.logical_or(kpos <= qpos - *c.sliding_window);
  at::Tensor mask = at::zeros({T, T}, x.options()).masked_fill(blocked, -INFINITY);

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[l];
    at::Tensor h = normalize(c, x, L.attn_norm, L.attn_norm_bias);
    x = x + linear(attention(model, l, h, angles, mask), L.wo, L.bo);
    h = normalize(c, x, L.mlp_norm, L.mlp_norm_bias);
    at::Tensor m = c.mlp == MlpKind::SwiGLU
                       ? at::silu(linear(h, L.w_gate, L.b_gate)) * linear(h, L.w_up, L.b_up)
                       : at::gelu(linear(h, L.w_up, L.b_up), "tanh");
    x = x + linear(m, L.w_down, L.b_down);
  }
  x = normalize(c, x, w.final_norm, w.final_norm_bias);
  return at::linear(x, w.lm_head);
}

at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets) {
  const int64_t V = logits.size(-1);
  return at::cross_entropy_loss(logits.reshape({-1, V}), targets.reshape({-1}).to(at::kLong), {},
                                at::Reduction::Mean, kIgnoreIndex);
}

at::Tensor kd_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                   const at::Tensor& targets) {
  const int64_t V = student_logits.size(-1);
  at::Tensor log_s = at::log_softmax(student_logits.reshape({-1, V}), -1);
  at::Tensor log_t = at::log_softmax(teacher_logits.detach().reshape({-1, V}), -1);
  at::Tensor per_pos = (log_t.exp() * (log_t - log_s)).sum(-1);  // [B*T]
  at::Tensor keep = targets.reshape({-1}).ne(kIgnoreIndex).to(at::kFloat);
  return (per_pos * keep).sum() / keep.sum().clamp_min(1.0);
}

}  // namespace thinkeys

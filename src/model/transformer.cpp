#include "model/transformer.h"

#include <cmath>

#include "util/error.h"

namespace thinkeys {
namespace {

at::Tensor normalize(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w,
                     const at::Tensor& b) {
  if (c.norm == NormKind::LayerNorm) return at::layer_norm(x, {x.size(-1)}, w, b, c.norm_eps);
  at::Tensor inv = at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + c.norm_eps);
  return x * inv * w;
}

// Rotate-half RoPE on [T, heads, width]; width may be below head_dim for thin
// keys trained with RoPE on their own dimensions, in which case the first
// width/2 frequencies are used.
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor c = cos.narrow(-1, 0, half), s = sin.narrow(-1, 0, half);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

}  // namespace

at::Tensor forward(const Model& model, std::span<const int32_t> tokens, KVCache& cache,
                   Logits which) {
  const ModelConfig& c = model.config;
  const auto& w = model.weights;
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t start = cache.length();
  if (T == 0) throw Error("forward: no tokens");
  if (start + T > cache.capacity())
    throw Error("context of " + std::to_string(start + T) + " tokens exceeds the cache capacity of " +
                std::to_string(cache.capacity()));
  if (c.positions == PositionKind::Learned && start + T > c.max_positions)
    throw Error("context of " + std::to_string(start + T) +
                " tokens exceeds the model's learned positions (" + std::to_string(c.max_positions) + ")");
  for (int32_t t : tokens)
    if (t < 0 || t >= c.vocab_size)
      throw Error("token id " + std::to_string(t) + " outside the vocabulary (" +
                  std::to_string(c.vocab_size) + ")");

  at::NoGradGuard no_grad;
  at::Tensor ids = at::from_blob(const_cast<int32_t*>(tokens.data()), {T}, at::kInt).to(at::kLong);
  at::Tensor x = w.tok_emb.index_select(0, ids);
  if (c.positions == PositionKind::Learned) x = x + w.pos_emb.narrow(0, start, T);

  at::Tensor cos, sin;
  if (c.positions == PositionKind::Rope) {
    at::Tensor pos = at::arange(start, start + T, at::kFloat);
    at::Tensor ang = at::outer(pos, model.rope_inv_freq);  // [T, d/2]
    cos = at::cos(ang).unsqueeze(1);                        // broadcast over heads
    sin = at::sin(ang).unsqueeze(1);
  }

  const int64_t H = c.n_heads, Hkv = c.n_kv_heads, G = c.group_size(), d = c.head_dim;
  const int64_t S = start + T;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));

  // Causal (and sliding-window) mask shared by all layers: query t sees key s
  // iff s <= start + t and, with a window W, s > start + t - W.
  at::Tensor mask;
  if (T > 1 || c.sliding_window) {
    at::Tensor qpos = at::arange(start, start + T, at::kLong).unsqueeze(1);
    at::Tensor kpos = at::arange(0, S, at::kLong).unsqueeze(0);
    at::Tensor blocked = kpos > qpos;
    if (c.sliding_window) blocked = blocked.logical_or(kpos <= qpos - *c.sliding_window);
    mask = at::zeros({T, S}, at::kFloat).masked_fill(blocked, -INFINITY);
  }

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[l];
    const int64_t r = c.key_width(l);
    at::Tensor h = normalize(c, x, L.attn_norm, L.attn_norm_bias);
    at::Tensor qkv = L.bqkv.defined() ? at::linear(h, L.wqkv, L.bqkv) : at::linear(h, L.wqkv);
    at::Tensor q = qkv.narrow(1, 0, H * r).view({T, H, r});
    at::Tensor k = qkv.narrow(1, H * r, Hkv * r).view({T, Hkv, r});
    at::Tensor v = qkv.narrow(1, H * r + Hkv * r, Hkv * d).view({T, Hkv, d});
    if (c.positions == PositionKind::Rope) {
      q = rotate(q, cos, sin);
      k = rotate(k, cos, sin);
    }
    cache.keys(l).narrow(1, start, T).copy_(k.transpose(0, 1));
    cache.values(l).narrow(1, start, T).copy_(v.transpose(0, 1));
    at::Tensor K = cache.keys(l).narrow(1, 0, S);    // [Hkv, S, r]
    at::Tensor V = cache.values(l).narrow(1, 0, S);  // [Hkv, S, d]

    // Group the G query heads of each KV head so K and V are never repeated.
    at::Tensor qg = q.view({T, Hkv, G, r}).permute({1, 2, 0, 3}).reshape({Hkv, G * T, r});
    at::Tensor scores = at::bmm(qg, K.transpose(1, 2)).mul_(scale);  // [Hkv, G*T, S]
    if (mask.defined()) scores.view({Hkv, G, T, S}).add_(mask);
    at::Tensor probs = at::softmax(scores, -1);
    at::Tensor attn = at::bmm(probs, V)                               // [Hkv, G*T, d]
                          .view({Hkv, G, T, d})
                          .permute({2, 0, 1, 3})
                          .reshape({T, H * d});
    x = x + (L.bo.defined() ? at::linear(attn, L.wo, L.bo) : at::linear(attn, L.wo));

    h = normalize(c, x, L.mlp_norm, L.mlp_norm_bias);
    at::Tensor m;
    if (c.mlp == MlpKind::SwiGLU) {
      at::Tensor gu = L.b_gate_up.defined() ? at::linear(h, L.w_gate_up, L.b_gate_up)
                                            : at::linear(h, L.w_gate_up);
      int64_t f = c.hidden_dim;
      m = at::silu(gu.narrow(1, 0, f)) * gu.narrow(1, f, f);
    } else {
      m = at::gelu(at::linear(h, L.w_up, L.b_up), "tanh");
    }
    x = x + (L.b_down.defined() ? at::linear(m, L.w_down, L.b_down) : at::linear(m, L.w_down));
  }
  cache.advance(static_cast<int>(T));

  if (which == Logits::Last) x = x.narrow(0, T - 1, 1);
  x = normalize(c, x, w.final_norm, w.final_norm_bias);
  return at::linear(x, w.lm_head);
}

}  // namespace thinkeys

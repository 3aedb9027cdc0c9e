#include "model/transformer.h"

#include <cmath>

#include "kernels/prefill_attention.h"
#include "model/attention_variants.h"
#include "model/layer_ops.h"
#include "model/query_keys.h"
#include "util/error.h"
#include "util/threads.h"
#include "util/work_pool.h"

namespace thinkeys {
namespace {

// Decode: one query per head. Per-head GEMV streams each cached key and value
// once; a batched one-row GEMM would first pack (copy) the whole cache slice.
// The G query heads of a group re-read their KV head from L2, not memory.
at::Tensor attend_one(const at::Tensor& q, const at::Tensor& K, const at::Tensor& V, double scale) {
  const int64_t H = q.size(1), nk = K.size(0), Hkv = V.size(0), d = V.size(2);
  at::Tensor out = at::empty({1, H * d}, q.options());
  at::Tensor s = at::empty({K.size(1)}, q.options()), p = at::empty_like(s);
  for (int64_t h = 0; h < H; ++h) {
    at::mv_out(s, K[h / (H / nk)], q[0][h]);
    s.mul_(scale);
    at::softmax_out(p, s, 0);
    at::Tensor o = out[0].narrow(0, h * d, d);
    at::mv_out(o, V[h / (H / Hkv)].t(), p);
  }
  return out;
}

// Causal attention of T queries at positions start.. over K, V on the
// compute pool (kernels/prefill_attention.h): only the key blocks each query
// sees, no score square.
at::Tensor attend_causal(const ModelConfig& c, const at::Tensor& q_in, const at::Tensor& K,
                         const at::Tensor& V, int64_t start) {
  const at::Tensor q = q_in.contiguous();
  const int64_t T = q.size(0), H = q.size(1), w = q.size(2), d = V.size(2);
  at::Tensor out = at::empty({T, H * d}, q.options());
  PrefillAttentionShape s;
  s.tokens = static_cast<int>(T);
  s.start = static_cast<int>(start);
  s.heads = static_cast<int>(H);
  s.key_heads = static_cast<int>(K.size(0));
  s.value_heads = static_cast<int>(V.size(0));
  s.key_width = static_cast<int>(w);
  s.head_dim = static_cast<int>(d);
  s.window = c.sliding_window ? *c.sliding_window : 0;
  s.scale = static_cast<float>(c.score_scale());
  PrefillAttentionArgs a;
  a.q = q.data_ptr<float>();
  a.ldq = static_cast<std::size_t>(H * w);
  a.k = K.data_ptr<float>();
  a.k_head_stride = static_cast<std::size_t>(K.stride(0));
  a.k_row_stride = static_cast<std::size_t>(K.stride(1));
  a.v = V.data_ptr<float>();
  a.v_head_stride = static_cast<std::size_t>(V.stride(0));
  a.v_row_stride = static_cast<std::size_t>(V.stride(1));
  a.out = out.data_ptr<float>();
  a.ldo = static_cast<std::size_t>(H * d);
  prefill_attention(s, a, *compute_pool());
  return out;
}

// Scores of T queries against S cached keys, softmax, values. Query head h
// reads key head h / (H / key_heads) and value head h / (H / Hkv); both
// groupings keep the heads in order, so one view turns one into the other.
// `mask` is the causal (and sliding-window) mask of queries at positions
// start.. ; an observer needs the score square, so it takes the libtorch path.
at::Tensor attend(const ModelConfig& c, const at::Tensor& q, const at::Tensor& K,
                  const at::Tensor& V, const at::Tensor& mask, int64_t start, int layer,
                  const AttentionObserver* observer) {
  const int64_t T = q.size(0), H = q.size(1), w = q.size(2);
  const int64_t nk = K.size(0), S = K.size(1), Hkv = V.size(0), d = V.size(2);
  const double scale = c.score_scale();
  if (T == 1 && !mask.defined() && !observer) return attend_one(q, K, V, scale);
  if (!observer && q.scalar_type() == at::kFloat && K.scalar_type() == at::kFloat &&
      V.scalar_type() == at::kFloat && K.stride(2) == 1 && V.stride(2) == 1)
    return attend_causal(c, q, K, V, start);
  at::Tensor qg = q.view({T, nk, H / nk, w}).permute({1, 2, 0, 3}).reshape({nk, H / nk * T, w});
  at::Tensor scores = at::bmm(qg, K.transpose(1, 2)).mul_(scale);  // [nk, (H/nk)*T, S]
  if (mask.defined()) scores.view({nk, H / nk, T, S}).add_(mask);
  at::Tensor probs = at::softmax(scores, -1).view({Hkv, H / Hkv * T, S});
  at::Tensor out =
      at::bmm(probs, V).view({Hkv, H / Hkv, T, d}).permute({2, 0, 1, 3}).reshape({T, H * d});
  // Neither scores (past its mask) nor probs is written again, so views suffice.
  if (observer) (*observer)(layer, scores.view({H, T, S}), probs.view({H, T, S}), out);
  return out;
}

// MLA / LRKV: write this step's cache rows, attend over all of them.
at::Tensor variant_attention(const Model& model, int l, const at::Tensor& h, const at::Tensor& cos,
                             const at::Tensor& sin, const at::Tensor& mask, KVCache& cache,
                             int64_t start) {
  const ModelConfig& c = model.config;
  const LayerWeights& L = model.weights.layers[l];
  const int64_t T = h.size(0), S = start + T;
  VariantProjections p =
      split_variant_projections(c, project(h, L.wqkv, {}, L.wqkv_scales).unsqueeze(0));
  cache.keys(l).narrow(1, start, T).copy_(variant_key_rows(c, L, p, cos, sin));
  at::Tensor values;
  if (c.is_lrkv()) {
    cache.values(l).narrow(1, start, T).copy_(variant_value_rows(c, p));
    values = cache.values(l).narrow(1, 0, S);
  }
  return variant_attend(c, L, p.q, cache.keys(l).narrow(1, 0, S), values, cos, sin, mask)
      .squeeze(0);
}

at::Tensor attention(const Model& model, int l, const at::Tensor& h, const RopeAngles& angles,
                     const at::Tensor& mask, KVCache& cache, int64_t start,
                     const QKObserver* observer, const AttentionObserver* attention_observer) {
  if (!model.config.is_standard_attention())
    return variant_attention(model, l, h, angles.cos, angles.sin, mask, cache, start);
  const ModelConfig& c = model.config;
  const LayerWeights& L = model.weights.layers[l];
  const int64_t T = h.size(0), S = start + T;

  QKV p = split_qkv(c, l, project(h, L.wqkv, L.bqkv, L.wqkv_scales));
  cache.values(l).narrow(1, start, T).copy_(p.v.transpose(0, 1));
  at::Tensor V = cache.values(l).narrow(1, 0, S);  // [Hkv, S, d]
  QueryKeys qk = prepare_query_keys(c, L, l, p.q, p.k, angles);
  cache.keys(l).narrow(1, start, T).copy_(qk.k.transpose(0, 1));
  if (c.rope_mode() == RopeMode::Latent) {
    // Rebuild every cached key from its latent, then rotate it at its position.
    at::Tensor C = cache.keys(l).narrow(1, 0, S).transpose(0, 1);  // [S, nk, r]
    at::Tensor K =
        latent_keys(c, L, C, rope_angles(c, model.rope_inv_freq, at::arange(0, S, at::kFloat)));
    return attend(c, qk.q, K.transpose(0, 1).contiguous(), V, mask, start, l, attention_observer);
  }
  if (observer && c.rope_mode() == RopeMode::Full)
    (*observer)(l, p.q, p.k.view({T, c.key_heads(), c.key_width(l)}), qk.q, qk.k);
  return attend(c, qk.q, cache.keys(l).narrow(1, 0, S), V, mask, start, l, attention_observer);
}

}  // namespace

at::Tensor forward(const Model& model, std::span<const int32_t> tokens, KVCache& cache,
                   Logits which, const QKObserver* observer,
                   const AttentionObserver* attention_observer) {
  const ModelConfig& c = model.config;
  const auto& w = model.weights;
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t start = cache.length();
  if (T == 0) throw Error("forward: no tokens");
  if (start + T > cache.capacity())
    throw Error("context of " + std::to_string(start + T) +
                " tokens exceeds the cache capacity of " + std::to_string(cache.capacity()));
  if (c.positions == PositionKind::Learned && start + T > c.max_positions)
    throw Error("context of " + std::to_string(start + T) +
                " tokens exceeds the model's learned positions (" +
                std::to_string(c.max_positions) + ")");
  for (int32_t t : tokens)
    if (t < 0 || t >= c.vocab_size)
      throw Error("token id " + std::to_string(t) + " outside the vocabulary (" +
                  std::to_string(c.vocab_size) + ")");

  at::NoGradGuard no_grad;
  at::Tensor ids = at::from_blob(const_cast<int32_t*>(tokens.data()), {T}, at::kInt).to(at::kLong);
  at::Tensor x = embed(w.tok_emb, w.tok_emb_scales, ids);
  if (c.positions == PositionKind::Learned) x = x + w.pos_emb.narrow(0, start, T);

  const RopeAngles angles =
      rope_angles(c, model.rope_inv_freq, at::arange(start, start + T, at::kFloat));

  const int64_t S = start + T;

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
    at::Tensor h = normalize(c, x, L.attn_norm, L.attn_norm_bias);
    at::Tensor attn =
        attention(model, l, h, angles, mask, cache, start, observer, attention_observer);
    x = x + project(attn, L.wo, L.bo, L.wo_scales);

    h = normalize(c, x, L.mlp_norm, L.mlp_norm_bias);
    x = x + feed_forward(c, L, h);
  }
  cache.advance(static_cast<int>(T));

  if (which == Logits::Last) x = x.narrow(0, T - 1, 1);
  x = normalize(c, x, w.final_norm, w.final_norm_bias);
  return project(x, w.lm_head, {}, w.lm_head_scales);
}

}  // namespace thinkeys

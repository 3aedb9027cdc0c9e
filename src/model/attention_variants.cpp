#include "model/attention_variants.h"

#include "model/layer_ops.h"

namespace thinkeys {
namespace {

// Rotates x [B, T, w] (no head axis) with tables shaped [T, 1, w/2].
at::Tensor rotate_rows(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return rotate(x.unsqueeze(2), cos, sin).squeeze(2);
}

// [B, S, H*r] latents -> [B, H, S, r].
at::Tensor per_head_latents(const at::Tensor& rows, int64_t offset, int64_t H, int64_t r) {
  const int64_t B = rows.size(0), S = rows.size(1);
  return rows.narrow(2, offset, H * r).view({B, S, H, r}).permute({0, 2, 1, 3});
}

at::Tensor softmax_scores(const ModelConfig& c, at::Tensor scores, const at::Tensor& mask) {
  scores = scores * c.score_scale();
  if (mask.defined()) scores = scores + mask;
  return at::softmax(scores, -1);
}

at::Tensor mla_attend(const ModelConfig& c, const LayerWeights& L, const at::Tensor& q,
                      const at::Tensor& rows, const at::Tensor& cos, const at::Tensor& sin,
                      const at::Tensor& mask) {
  const int64_t B = q.size(0), T = q.size(1), H = c.n_heads, d = c.head_dim;
  const int64_t dn = c.attention.nope_dim, dr = c.attention.rope_dim, dc = c.attention.latent;
  at::Tensor qh = q.view({B, T, H, dn + dr});
  // The map in the model's dtype (bf16 for a bf16 model), widened for this pass.
  at::Tensor up = L.kv_up.to(at::kFloat).view({H, dn + d, dc});
  // Absorb W_UK into the query: q_n . (W_UK c) = (W_UK^T q_n) . c.
  at::Tensor q_lat = at::einsum("bthn,hnc->bhtc", {qh.narrow(3, 0, dn), up.narrow(1, 0, dn)});
  at::Tensor q_rope = rotate(qh.narrow(3, dn, dr), cos, sin).permute({0, 2, 1, 3});
  at::Tensor qa = at::cat({q_lat, q_rope}, -1);  // [B, H, T, dc+dr]
  at::Tensor probs = softmax_scores(c, at::matmul(qa, rows.unsqueeze(1).transpose(2, 3)), mask);
  at::Tensor o_lat = at::matmul(probs, rows.narrow(2, 0, dc).unsqueeze(1));  // [B, H, T, dc]
  // Apply W_UV after the weighted sum: sum_s p_s W_UV c_s = W_UV sum_s p_s c_s.
  return at::einsum("bhtc,hvc->bthv", {o_lat, up.narrow(1, dn, d)}).reshape({B, T, H * d});
}

at::Tensor lrkv_attend(const ModelConfig& c, const LayerWeights& L, const at::Tensor& q,
                       const at::Tensor& krows, const at::Tensor& vrows, const at::Tensor& cos,
                       const at::Tensor& sin, const at::Tensor& mask) {
  const int64_t B = q.size(0), T = q.size(1), H = c.n_heads, d = c.head_dim, r = c.attention.rank;
  at::Tensor qh = q.view({B, T, H, d});
  at::Tensor uk = L.k_res_up.to(at::kFloat).view({H, d, r});
  at::Tensor uv = L.v_res_up.to(at::kFloat).view({H, d, r});
  at::Tensor q_rot = rotate(qh, cos, sin).permute({0, 2, 1, 3});  // [B, H, T, d]
  at::Tensor q_res = at::einsum("bthd,hdr->bhtr", {qh, uk});      // U_h^T q, unrotated
  at::Tensor k_shared = krows.narrow(2, 0, d).unsqueeze(1);       // [B, 1, S, d]
  at::Tensor scores = at::matmul(q_rot, k_shared.transpose(2, 3)) +
                      at::matmul(q_res, per_head_latents(krows, d, H, r).transpose(2, 3));
  at::Tensor probs = softmax_scores(c, scores, mask);  // [B, H, T, S]
  at::Tensor o =
      at::matmul(probs, vrows.narrow(2, 0, d).unsqueeze(1)) +
      at::einsum("bhtr,hdr->bhtd", {at::matmul(probs, per_head_latents(vrows, d, H, r)), uv});
  return o.permute({0, 2, 1, 3}).reshape({B, T, H * d});
}

}  // namespace

VariantProjections split_variant_projections(const ModelConfig& c, const at::Tensor& qkv) {
  const int64_t H = c.n_heads, nq = H * c.q_rows_per_head(0), nk = c.k_rows(0);
  VariantProjections p;
  p.q = qkv.narrow(-1, 0, nq);
  p.k = qkv.narrow(-1, nq, nk);
  if (c.is_lrkv()) {
    const int64_t d = c.head_dim, hr = H * c.attention.rank;
    p.v = qkv.narrow(-1, nq + nk, d);
    p.zk = qkv.narrow(-1, nq + nk + d, hr);
    p.zv = qkv.narrow(-1, nq + nk + d + hr, hr);
  }
  return p;
}

at::Tensor variant_key_rows(const ModelConfig& c, const LayerWeights& L,
                            const VariantProjections& p, const at::Tensor& cos,
                            const at::Tensor& sin) {
  if (c.is_mla()) {
    const int64_t dc = c.attention.latent, dr = c.attention.rope_dim;
    at::Tensor latent = normalize(c, p.k.narrow(-1, 0, dc), L.kv_norm, {});
    return at::cat({latent, rotate_rows(p.k.narrow(-1, dc, dr), cos, sin)}, -1);
  }
  return at::cat({rotate_rows(p.k, cos, sin), p.zk}, -1);
}

at::Tensor variant_value_rows(const ModelConfig& c, const VariantProjections& p) {
  return c.is_lrkv() ? at::cat({p.v, p.zv}, -1) : at::Tensor();
}

at::Tensor variant_attend(const ModelConfig& c, const LayerWeights& L, const at::Tensor& q,
                          const at::Tensor& key_rows, const at::Tensor& value_rows,
                          const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask) {
  return c.is_mla() ? mla_attend(c, L, q, key_rows, cos, sin, mask)
                    : lrkv_attend(c, L, q, key_rows, value_rows, cos, sin, mask);
}

}  // namespace thinkeys

#include "model/query_keys.h"

#include <vector>

#include "model/layer_ops.h"
#include "model/rope.h"

namespace thinkeys {
namespace {

// x with its last dimension split into `heads` x `width`.
at::Tensor split_last(const at::Tensor& x, int64_t heads, int64_t width) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 1);
  shape.push_back(heads);
  shape.push_back(width);
  return x.view(shape);
}

// x [..., heads, width] with its last two dimensions merged and split again.
at::Tensor regroup(const at::Tensor& x, int64_t heads, int64_t width) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 2);
  shape.push_back(heads);
  shape.push_back(width);
  return x.reshape(shape);
}

}  // namespace

RopeAngles rope_angles(const ModelConfig& c, const at::Tensor& model_inv_freq,
                       const at::Tensor& positions) {
  RopeAngles a;
  a.positions = positions;
  if (c.positions == PositionKind::Rope)
    std::tie(a.cos, a.sin) = rope_cos_sin(positions, model_inv_freq);
  return a;
}

QKV split_qkv(const ModelConfig& c, int layer, const at::Tensor& qkv) {
  const int64_t H = c.n_heads, Hkv = c.n_kv_heads, d = c.head_dim;
  const int64_t qr = c.q_rows_per_head(layer), kr = c.k_rows(layer);
  return {split_last(qkv.narrow(-1, 0, H * qr), H, qr), qkv.narrow(-1, H * qr, kr),
          split_last(qkv.narrow(-1, H * qr + kr, Hkv * d), Hkv, d)};
}

at::Tensor per_head_map(const at::Tensor& x, const at::Tensor& maps) {
  // Batched over heads: [heads, rows, a] x [heads, a, b].
  const int64_t heads = x.size(-2), a = x.size(-1);
  at::Tensor y = at::bmm(x.reshape({-1, heads, a}).transpose(0, 1), maps).transpose(0, 1);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 1);
  shape.push_back(maps.size(2));
  return y.reshape(shape);
}

QueryKeys prepare_query_keys(const ModelConfig& c, const LayerWeights& L, int layer,
                             const at::Tensor& q, const at::Tensor& k, const RopeAngles& angles) {
  const int64_t H = c.n_heads, Hkv = c.n_kv_heads, d = c.head_dim;
  const int64_t nk = c.key_heads(), r = c.key_width(layer), share = c.key_share();
  const bool rope = c.positions == PositionKind::Rope;
  const at::Tensor& cos = angles.cos;
  const at::Tensor& sin = angles.sin;
  switch (c.rope_mode()) {
    case RopeMode::Full: {
      at::Tensor kh = split_last(k, nk, r);
      if (!rope) return {q, kh};
      // A key-width table (RopeTable::KeyWidth) is the layer's own.
      auto [lc, ls] = L.rope_inv_freq.defined() ? rope_cos_sin(angles.positions, L.rope_inv_freq)
                                                : std::pair{cos, sin};
      return {rotate(q, lc, ls), rotate(kh, lc, ls)};
    }
    case RopeMode::Pairs: {
      // Each KV head rotates its own kept planes; its query heads use the same.
      const int64_t N = angles.positions.size(0);
      at::Tensor ang_k = angles.positions.view({N, 1, 1}) * L.rope_inv_freq.unsqueeze(0);
      at::Tensor ang_q = ang_k.repeat_interleave(H / Hkv, 1);  // [N, H, r/2]
      return {rotate(q, at::cos(ang_q), at::sin(ang_q)),
              rotate(split_last(k, nk, r), at::cos(ang_k), at::sin(ang_k))};
    }
    case RopeMode::Post: {
      at::Tensor kf = regroup(rotate(split_last(k, Hkv, d), cos, sin), nk, share * d);
      return {per_head_map(rotate(q, cos, sin), L.q_down), per_head_map(kf, L.k_down)};
    }
    case RopeMode::Latent:
      return {rope ? rotate(q, cos, sin) : q, split_last(k, nk, r)};
  }
  return {q, k};
}

at::Tensor latent_keys(const ModelConfig& c, const LayerWeights& L, const at::Tensor& latent,
                       const RopeAngles& angles) {
  at::Tensor K = regroup(per_head_map(latent, L.k_up.transpose(1, 2)), c.n_kv_heads, c.head_dim);
  return c.positions == PositionKind::Rope ? rotate(K, angles.cos, angles.sin) : K;
}

}  // namespace thinkeys

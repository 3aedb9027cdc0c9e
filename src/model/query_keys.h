#pragma once
// Query and key preparation, written once for prefill (model/transformer),
// batched decode (runtime/batch_decoder) and training (train/training_forward):
// splitting the fused projection, the thin-key maps and RoPE in every
// RopeMode. The three paths differ only in their leading dimensions
// ([T], [B] or [B, T] rows before the head dimension), so everything here
// works on tensors shaped [..., N, heads, width] whose second-to-last leading
// dimension lines up with the N positions.
#include <ATen/ATen.h>

#include "config/model_config.h"
#include "model/weights.h"

namespace thinkeys {

// Positions of the N rows and the model's RoPE table evaluated at them.
struct RopeAngles {
  at::Tensor positions;  // [N] float
  at::Tensor cos, sin;   // [N, 1, half] (rope_cos_sin); undefined without RoPE
};
RopeAngles rope_angles(const ModelConfig& c, const at::Tensor& model_inv_freq,
                       const at::Tensor& positions);

// The three parts of a fused QKV projection [..., N, H*qr + k_rows + Hkv*d]:
// q [..., N, H, qr], k [..., N, k_rows] (flat: its head split depends on the
// mode), v [..., N, Hkv, d].
struct QKV {
  at::Tensor q, k, v;
};
QKV split_qkv(const ModelConfig& c, int layer, const at::Tensor& qkv);

// [..., heads, a] x [heads, a, b] -> [..., heads, b]: one small map per head.
at::Tensor per_head_map(const at::Tensor& x, const at::Tensor& maps);

// Queries and keys as attention consumes them, from the projections q
// [..., N, H, qr] and k [..., N, k_rows]:
//   Full, Pairs, Post: q [..., N, H, r] and k [..., N, key heads, r], both
//     rotated (Full: by the model's or the layer's key-width table; Pairs: by
//     each KV head's kept planes; Post: rotated at full width, then mapped
//     down), so that q . k is the score and k is what the cache stores.
//   Latent: q [..., N, H, d] rotated; k [..., N, key heads, r] the unrotated
//     latent the cache stores (latent_keys rebuilds and rotates it).
// Out of place, so autograd can go through it.
struct QueryKeys {
  at::Tensor q, k;
};
QueryKeys prepare_query_keys(const ModelConfig& c, const LayerWeights& L, int layer,
                             const at::Tensor& q, const at::Tensor& k, const RopeAngles& angles);

// Latent mode: full keys [..., S, Hkv, d] rebuilt from cached latents
// [..., S, key heads, r] (k = P c per key head, whose share * d outputs split
// into `share` KV heads) and rotated at `angles` (the latents' positions).
at::Tensor latent_keys(const ModelConfig& c, const LayerWeights& L, const at::Tensor& latent,
                       const RopeAngles& angles);

}  // namespace thinkeys

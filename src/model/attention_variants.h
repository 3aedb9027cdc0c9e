#pragma once
// MLA and LRKV attention (model_config.h, AttentionKind), written once for
// batched tensors so that the runtime (batch 1, cache rows) and training (no
// cache) run the same arithmetic. Decode never rebuilds per-head keys: the
// key-side maps are absorbed into the query and the value-side maps applied
// after the weighted sum, so the cache stays physically as small as it is.
#include <ATen/ATen.h>

#include "config/model_config.h"
#include "model/weights.h"

namespace thinkeys {

// The fused input projection of one layer split into its parts, each
// [B, T, width]: q [H*q_rows], k (MLA: latent+rope; LRKV: shared key),
// v (LRKV shared value; undefined for MLA), zk/zv (LRKV residual latents).
struct VariantProjections {
  at::Tensor q, k, v, zk, zv;
};
VariantProjections split_variant_projections(const ModelConfig& c, const at::Tensor& qkv);

// Rows to cache for new tokens, [B, T, cache width]. cos/sin are [T, 1, w/2]
// for the tokens' positions (the shapes the forward passes already build).
at::Tensor variant_key_rows(const ModelConfig& c, const LayerWeights& L,
                            const VariantProjections& p, const at::Tensor& cos,
                            const at::Tensor& sin);
// LRKV value rows [B, T, d + H*r]; MLA has none (its values are the latent).
at::Tensor variant_value_rows(const ModelConfig& c, const VariantProjections& p);

// Attention of T new queries q [B, T, H*q_rows] (positions given by cos/sin)
// over S cached rows (keys [B, S, w], values [B, S, w] or undefined for MLA),
// with an optional additive mask broadcastable to [T, S]. Returns [B, T, H*d].
at::Tensor variant_attend(const ModelConfig& c, const LayerWeights& L, const at::Tensor& q,
                          const at::Tensor& key_rows, const at::Tensor& value_rows,
                          const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask);

}  // namespace thinkeys

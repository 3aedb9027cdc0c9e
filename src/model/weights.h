#pragma once
// Weights of a decoder-only transformer in one canonical layout, whatever file
// they came from: Linear weights are [out, in]; RoPE pairs are (i, i + d/2)
// ("rotate-half"); query head h reads KV head h / group_size.
#include <ATen/ATen.h>

#include <vector>

#include "config/model_config.h"

namespace thinkeys {

struct LayerWeights {
  at::Tensor attn_norm, attn_norm_bias;  // bias only for LayerNorm
  at::Tensor wq, wk, wv, bq, bk, bv;     // [H*q_rows, D], [k_rows, D], [Hkv*d, D]
  // Thin-key maps (empty for ordinary models), see RopeMode.
  at::Tensor k_down;  // Post: [key_heads, share*d, r], cached k' = A^T (R k)
  at::Tensor q_down;  // Post: [H, d, r], q' = B_h^T (R q)
  at::Tensor k_up;    // Latent: [key_heads, share*d, r], rebuilt k = P c
  // Pairs: [Hkv, r/2] frequencies of the kept planes; Full with
  // RopeTable::KeyWidth: [r/2], the table over the key width.
  at::Tensor rope_inv_freq;
  // MLA: wq is [H*(nope+rope), D], wk is W_DKV [latent+rope, D], no wv.
  at::Tensor kv_norm;  // [latent] RMSNorm weight of the cached latent
  at::Tensor kv_up;    // [H*(nope+d), latent]: per head W_UK rows then W_UV rows
  // LRKV: wk, wv are the shared [d, D] maps; residual factors per head.
  at::Tensor k_res_down, v_res_down;  // [H*r, D]: z_h = V_h x
  at::Tensor k_res_up, v_res_up;      // [H*d, r]: head h adds U_h z_h
  at::Tensor wo, bo;                  // [D, H*d]
  at::Tensor mlp_norm, mlp_norm_bias;
  at::Tensor w_gate, w_up, w_down;  // w_gate only for SwiGLU
  at::Tensor b_up, b_down, b_gate;

  // Fused copies used by the forward pass (one GEMM instead of three); the
  // separate tensors above are views into them after fuse().
  at::Tensor wqkv, bqkv, w_gate_up, b_gate_up;

  // Int8 weights only (model/weight_format.h): the packed f16 scales
  // [blocks, groups, 16] of the matrix of the same name (kernels/weight_rows.h);
  // undefined for float weights.
  at::Tensor wqkv_scales, wo_scales, w_gate_up_scales, w_up_scales, w_down_scales;
};

struct Weights {
  at::Tensor tok_emb;  // [V, D]
  at::Tensor pos_emb;  // [P, D], learned positions only
  std::vector<LayerWeights> layers;
  at::Tensor final_norm, final_norm_bias;
  at::Tensor lm_head;                         // [V, D]; shares storage with tok_emb when tied
  at::Tensor tok_emb_scales, lm_head_scales;  // int8 weights only
};

struct Model {
  ModelConfig config;
  Weights weights;
  at::Tensor rope_inv_freq;  // [d/2], RoPE only

  // Builds fused tensors and RoPE tables; call after weights change.
  void finalize();
  int64_t parameter_count() const;
  int64_t weight_bytes() const;    // bytes the forward pass reads per decode step
  int64_t resident_bytes() const;  // bytes all weights occupy in memory
};

// A copy of t on transparent huge pages (util/huge_page_arena.h) when it is a
// CPU tensor without gradients; t itself otherwise.
at::Tensor on_huge_pages(const at::Tensor& t);
// An uninitialized CPU tensor there.
at::Tensor empty_on_huge_pages(at::IntArrayRef sizes, at::ScalarType dtype);

// Whether t holds packed integer levels (int8 or int4, model/weight_format.h)
// rather than floats: its [rows, cols] view then stands over padded storage.
bool packed_tensor(const at::Tensor& t);

// Expected shape of every weight, so loaders can check files against the config.
std::vector<int64_t> expected_shape_q(const ModelConfig& c, int layer);
std::vector<int64_t> expected_shape_k(const ModelConfig& c, int layer);

}  // namespace thinkeys

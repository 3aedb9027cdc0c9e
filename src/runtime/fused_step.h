#pragma once
// What BatchDecoder's fused decode step keeps between steps
// (runtime/fused_step.cpp): the model's matrices as plain layouts and the
// per-step buffers, grown to the largest batch seen.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "kernels/packed_gemm.h"
#include "kernels/weight_rows.h"
#include "runtime/batch_decoder.h"

namespace thinkeys {

struct BatchDecoder::FusedStep {
  struct Layer {
    WeightRows qkv, o, up, down;  // up: gate and up stacked for SwiGLU
    int n_qkv = 0, n_up = 0;
    // inv_freq: the layer's own RoPE table, [r/2] (Full, RopeTable::KeyWidth)
    // or one row of r/2 per KV head (Pairs).
    at::Tensor b_qkv, b_o, b_up, b_down, norm1, norm1_b, norm2, norm2_b, inv_freq;
    // Post: the per-head maps as output rows, [H, r, d] and [key_heads, r, share*d].
    at::Tensor q_down_t, k_down_t;
  };
  std::vector<Layer> layers;
  WeightRows emb, head;
  at::Tensor final_norm, final_norm_b, pos_emb, inv_freq;
  // Per-step buffers; layer_cos/sin hold a layer's own RoPE table's angles;
  // qmap/kmap the Post mode's mapped queries and keys.
  std::vector<float> x, h, qkv, att, tmp, up, act, cos, sin, layer_cos, layer_sin, qmap, kmap;
  // A matrix's input rows quantized for int8 or int4 weights (kernels/packed_gemm.h).
  Int16RowBuffer xq;
  // Many rows rounded to bf16 for bf16 weights (bf16_gemm_rows).
  std::vector<uint16_t> xb;
};

}  // namespace thinkeys

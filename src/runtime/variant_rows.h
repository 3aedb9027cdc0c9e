#pragma once
// MLA and LRKV decode over the paged cache. Each layer caches one row per
// token that every query head reads (config/cache_layout.h), so one token is
// one attention task of n_heads queries over a single key head. The per-head
// maps sit on either side of the kernel, as in the dense path
// (model/attention_variants.h): MLA's W_UK is absorbed into each query and
// W_UV applied to the weighted sum of latents; LRKV's key residual map is
// absorbed likewise, each query carrying zeros in the other heads' residual
// channels so that it scores the shared key plus only its own latent, and the
// value residual map is applied after the sum. The cache stays as thin as the
// dense one: MLA's values are its rows' latent part, read in place.
#include <vector>

#include "kernels/weight_rows.h"

namespace thinkeys {

struct Model;

class VariantRows {
 public:
  // An MLA or LRKV model, which must outlive this (its maps are read in place).
  explicit VariantRows(const Model& model);

  bool values_in_keys() const { return mla_; }
  int heads() const { return H_; }
  // Width of a cached key row and of each query row the kernel reads.
  int key_width() const { return key_width_; }
  // Width of a cached value row (LRKV) or of the keys' latent part (MLA):
  // the kernel's output per query.
  int value_width() const { return value_width_; }

  // From one token's fused projection row `qkv`, rotated by cos / sin (the
  // model's RoPE table at the token's position): the rows to cache
  // (value_row only for LRKV).
  void cache_rows(int layer, const float* qkv, const float* cos, const float* sin, float* key_row,
                  float* value_row) const;
  // Head h's query row [key_width] from the same projection row.
  void query(int layer, const float* qkv, const float* cos, const float* sin, int h,
             float* out) const;
  // Head h's attention output [head_dim] from its row of the kernel's output.
  void output(int layer, int h, const float* kernel_out, float* att) const;

 private:
  struct Layer {
    WeightRows up;                   // MLA kv_up [H*(dn+d), dc]; LRKV k_res_up [H*d, r]
    WeightRows v_up;                 // LRKV v_res_up [H*d, r]
    const float* kv_norm = nullptr;  // MLA [dc]
  };
  bool mla_ = false, rms_ = true;
  int H_ = 0, d_ = 0, dn_ = 0, dr_ = 0, dc_ = 0, r_ = 0, key_width_ = 0, value_width_ = 0;
  float eps_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace thinkeys

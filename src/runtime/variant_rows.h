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

namespace thinkeys {

struct Model;

class VariantRows {
 public:
  explicit VariantRows(const Model& model);  // an MLA or LRKV model

  bool values_in_keys() const { return mla_; }
  int heads() const { return H_; }
  // Width of a cached key row and of each query row the kernel reads.
  int key_width() const { return key_width_; }
  // Width of a cached value row (LRKV) or of the keys' latent part (MLA):
  // the kernel's output per query.
  int value_width() const { return value_width_; }

  // From one token's fused projection row `qkv` at `position` in `layer`:
  // the rows to cache (value_row only for LRKV) and the H query rows,
  // [H][key_width].
  void prepare(int layer, float position, const float* qkv, float* key_row, float* value_row,
               float* queries);
  // The kernel's [H][value_width] outputs to the heads' attention outputs
  // [H][head_dim].
  void finish(int layer, const float* out, float* att) const;

 private:
  bool mla_ = false, rms_ = true;
  int H_ = 0, d_ = 0, dn_ = 0, dr_ = 0, dc_ = 0, r_ = 0, key_width_ = 0, value_width_ = 0;
  float eps_ = 0;
  std::vector<float> inv_freq_, cos_, sin_;
  // Per layer: the maps absorbed into queries, [H][dc][dn] (MLA, W_UK^T) or
  // [H][r][d] (LRKV, U_k^T); the maps after the sum, [H][d][dc] (W_UV) or
  // [H][d][r] (U_v); MLA's latent norm weights [dc].
  std::vector<std::vector<float>> query_maps_, out_maps_, kv_norm_;
};

}  // namespace thinkeys

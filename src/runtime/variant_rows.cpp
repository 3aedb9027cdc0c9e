#include "runtime/variant_rows.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "kernels/row_ops.h"
#include "kernels/small_gemm.h"
#include "model/weights.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::vector<float> floats(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

}  // namespace

VariantRows::VariantRows(const Model& model) {
  const ModelConfig& c = model.config;
  if (!c.is_mla() && !c.is_lrkv()) throw Error("VariantRows: not an MLA or LRKV model");
  mla_ = c.is_mla();
  rms_ = c.norm == NormKind::RMSNorm;
  eps_ = static_cast<float>(c.norm_eps);
  H_ = c.n_heads;
  d_ = c.head_dim;
  dn_ = c.attention.nope_dim;
  dr_ = c.attention.rope_dim;
  dc_ = c.attention.latent;
  r_ = c.attention.rank;
  key_width_ = c.cache_key_width(0);
  value_width_ = mla_ ? dc_ : c.cache_value_width();
  inv_freq_ = floats(model.rope_inv_freq);
  cos_.resize(inv_freq_.size());
  sin_.resize(inv_freq_.size());
  for (const LayerWeights& L : model.weights.layers) {
    if (mla_) {
      // kv_up [H*(dn+d), dc]: per head W_UK's dn rows, then W_UV's d rows.
      const at::Tensor up = L.kv_up.to(at::kFloat).view({H_, dn_ + d_, dc_});
      query_maps_.push_back(floats(up.narrow(1, 0, dn_).transpose(1, 2)));
      out_maps_.push_back(floats(up.narrow(1, dn_, d_)));
      kv_norm_.push_back(floats(L.kv_norm));
    } else {
      // k_res_up, v_res_up [H*d, r]: head h's map is rows [h*d, (h+1)*d).
      query_maps_.push_back(floats(L.k_res_up.to(at::kFloat).view({H_, d_, r_}).transpose(1, 2)));
      out_maps_.push_back(floats(L.v_res_up));
    }
  }
}

void VariantRows::prepare(int layer, float position, const float* qkv, float* key_row,
                          float* value_row, float* queries) {
  const int half = static_cast<int>(inv_freq_.size());
  rope_angles(position, inv_freq_.data(), half, cos_.data(), sin_.data());
  const float* qmap = query_maps_[layer].data();
  if (mla_) {
    const int qr = dn_ + dr_;
    const float* k = qkv + H_ * qr;
    const float* w = kv_norm_[layer].data();
    if (rms_)
      rms_norm_row(k, w, dc_, eps_, key_row);
    else
      layer_norm_row(k, w, nullptr, dc_, eps_, key_row);
    std::copy(k + dc_, k + dc_ + dr_, key_row + dc_);
    rope_rotate_half(key_row + dc_, 1, dr_, dr_, cos_.data(), sin_.data());
    for (int h = 0; h < H_; ++h) {
      const float* q = qkv + h * qr;
      float* out = queries + h * key_width_;
      small_gemm(qmap + static_cast<std::size_t>(h) * dc_ * dn_, dn_, dn_, q, dn_, 1, nullptr, out,
                 dc_, 0, dc_);
      std::copy(q + dn_, q + qr, out + dc_);
      rope_rotate_half(out + dc_, 1, dr_, dr_, cos_.data(), sin_.data());
    }
    return;
  }
  const float* k = qkv + H_ * d_;
  const float* v = k + d_;
  const float* zk = v + d_;
  const float* zv = zk + H_ * r_;
  std::copy(k, k + d_, key_row);
  rope_rotate_half(key_row, 1, d_, d_, cos_.data(), sin_.data());
  std::copy(zk, zk + H_ * r_, key_row + d_);
  std::copy(v, v + d_, value_row);
  std::copy(zv, zv + H_ * r_, value_row + d_);
  for (int h = 0; h < H_; ++h) {
    const float* q = qkv + h * d_;
    float* out = queries + h * key_width_;
    std::fill(out, out + key_width_, 0.0f);
    // U_k^T q on the unrotated query, the shared part rotated as its key.
    small_gemm(qmap + static_cast<std::size_t>(h) * r_ * d_, d_, d_, q, d_, 1, nullptr,
               out + d_ + h * r_, r_, 0, r_);
    std::copy(q, q + d_, out);
    rope_rotate_half(out, 1, d_, d_, cos_.data(), sin_.data());
  }
}

void VariantRows::finish(int layer, const float* out, float* att) const {
  const float* map = out_maps_[layer].data();
  for (int h = 0; h < H_; ++h) {
    const float* o = out + h * value_width_;
    if (mla_)
      small_gemm(map + static_cast<std::size_t>(h) * d_ * dc_, dc_, dc_, o, dc_, 1, nullptr,
                 att + h * d_, d_, 0, d_);
    else  // shared value part plus U_v times the head's own value latent
      small_gemm(map + static_cast<std::size_t>(h) * d_ * r_, r_, r_, o + d_ + h * r_, r_, 1, o,
                 att + h * d_, d_, 0, d_);
  }
}

}  // namespace thinkeys

#include "runtime/variant_rows.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "kernels/row_ops.h"
#include "kernels/small_gemm.h"
#include "model/weight_format.h"
#include "model/weights.h"
#include "util/error.h"

namespace thinkeys {
namespace {

const float* f32_data(const at::Tensor& t, const char* what) {
  if (!t.defined() || t.scalar_type() != at::kFloat || !t.is_contiguous())
    throw Error(std::string("MLA / LRKV decoding needs the model's ") + what +
                " as a contiguous f32 tensor");
  return t.data_ptr<float>();
}

// A per-head map as the model holds it (f32, bf16 or f16, convert_weights);
// weight_rows checks the layout, small_gemm_transposed the dtype.
WeightRows map_rows(const at::Tensor& t, const char* what) {
  if (!t.defined()) throw Error(std::string("MLA / LRKV decoding needs the model's ") + what);
  return weight_rows(t);
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
  for (const LayerWeights& L : model.weights.layers) {
    Layer l;
    if (mla_) {
      l.up = map_rows(L.kv_up, "kv_up");
      l.kv_norm = f32_data(L.kv_norm, "kv_norm");
    } else {
      l.up = map_rows(L.k_res_up, "k_res_up");
      l.v_up = map_rows(L.v_res_up, "v_res_up");
    }
    layers_.push_back(l);
  }
}

void VariantRows::cache_rows(int layer, const float* qkv, const float* cos, const float* sin,
                             float* key_row, float* value_row) const {
  if (mla_) {
    const float* k = qkv + H_ * (dn_ + dr_);
    const float* w = layers_[layer].kv_norm;
    if (rms_)
      rms_norm_row(k, w, dc_, eps_, key_row);
    else
      layer_norm_row(k, w, nullptr, dc_, eps_, key_row);
    std::copy(k + dc_, k + dc_ + dr_, key_row + dc_);
    rope_rotate_half(key_row + dc_, 1, dr_, dr_, cos, sin);
    return;
  }
  const float* k = qkv + H_ * d_;
  const float* v = k + d_;
  const float* zk = v + d_;
  const float* zv = zk + H_ * r_;
  std::copy(k, k + d_, key_row);
  rope_rotate_half(key_row, 1, d_, d_, cos, sin);
  std::copy(zk, zk + H_ * r_, key_row + d_);
  std::copy(v, v + d_, value_row);
  std::copy(zv, zv + H_ * r_, value_row + d_);
}

void VariantRows::query(int layer, const float* qkv, const float* cos, const float* sin, int h,
                        float* out) const {
  const WeightRows& up = layers_[layer].up;
  std::fill(out, out + key_width_, 0.0f);
  if (mla_) {
    // [W_UK^T q_nope ; rotated q_rope]: W_UK is head h's first dn rows of kv_up.
    const float* q = qkv + h * (dn_ + dr_);
    small_gemm_transposed(up.from_row(static_cast<std::size_t>(h) * (dn_ + d_)), dn_, dc_, q, out);
    std::copy(q + dn_, q + dn_ + dr_, out + dc_);
    rope_rotate_half(out + dc_, 1, dr_, dr_, cos, sin);
    return;
  }
  // [rotated q ; 0 .. U_k^T q (unrotated) at head h's residual channels .. 0].
  const float* q = qkv + h * d_;
  small_gemm_transposed(up.from_row(static_cast<std::size_t>(h) * d_), d_, r_, q,
                        out + d_ + h * r_);
  std::copy(q, q + d_, out);
  rope_rotate_half(out, 1, d_, d_, cos, sin);
}

void VariantRows::output(int layer, int h, const float* kernel_out, float* att) const {
  const Layer& l = layers_[layer];
  if (mla_)  // W_UV (head h's d rows after its dn W_UK rows) times the summed latent
    small_gemm(l.up.from_row(static_cast<std::size_t>(h) * (dn_ + d_) + dn_), dc_, kernel_out, dc_,
               1, nullptr, att, d_, 0, d_);
  else  // the shared value part plus U_v times the head's own value latent
    small_gemm(l.v_up.from_row(static_cast<std::size_t>(h) * d_), r_, kernel_out + d_ + h * r_, r_,
               1, kernel_out, att, d_, 0, d_);
}

}  // namespace thinkeys

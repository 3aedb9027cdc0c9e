// BatchDecoder's decode step for the common architectures, on buffers that
// live as long as the decoder: embedding rows, norms, RoPE, the activation
// and residual adds are loops (kernels/row_ops.h), every matrix goes through
// small_gemm in its stored dtype on the compute pool (bf16 ones past
// kSmallGemmMaxRows rows through oneDNN, see gemm), and attention through
// the paged kernels, for every RoPE mode of standard attention (full or thin
// keys rotated in place, Pairs' per-head planes, Post's per-head maps, Latent
// keys rotated inside the attention kernel), and MLA and LRKV through
// runtime/variant_rows.h. forward_rows, the libtorch version, stays for
// prefill chunks.
#include "runtime/fused_step.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/packed_gemm.h"
#include "kernels/row_ops.h"
#include "kernels/share_claims.h"
#include "kernels/small_gemm.h"
#include "model/layer_ops.h"
#include "model/weight_format.h"
#include "runtime/batch_decoder.h"

namespace thinkeys {
namespace {

// Rows a claim of ShareClaims counts in: one int8 block.
constexpr int kUnitRows = 16;
// Bytes of weights a thread takes from its own share at a time, for one input
// row and for several. Smaller takes leave less for the other thread to wait
// on at the end, and each take's first lines are requested at once (the int8
// kernel's PrefetchTuning::int8_start_bytes). Paired whole-model steps
// (docs/results/decode.md): at batch 1, 16 KiB against 64 took int8 steps
// 0.93-0.99x as long at 1K-4K and bf16 0.98-1.00x; at batch 8 it was
// 1.01-1.06x slower. 256 KiB ran int8 steps 2-3% slower than 64 KiB. On the
// Intel VM, with 3 KiB starts, 8, 32 and 64 KiB took int8 steps 0.99-1.00x
// the time of 16.
constexpr std::size_t kOwnTakeBytesOneRow = 16 << 10;
constexpr std::size_t kOwnTakeBytes = 64 << 10;

const float* ptr(const at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

}  // namespace

namespace {

// Int8 and int4 weights multiply int16 activations, quantized here once per
// matrix rather than once per claim. Each thread reads its own contiguous share of
// the rows front to back, one long stream as the read-bandwidth probe reads,
// and then takes the back half of what the other has left
// (kernels/share_claims.h): the two vCPUs stream at different rates, and
// items of 64-128 rows claimed in turn from shares cost 3-6% of a step at
// batch 1 in ramps and waits (docs/results/decode.md).
//
// Past kSmallGemmMaxRows rows, bf16 weights go to oneDNN's bf16 GEMM where
// the CPU has one (bf16_gemm_rows): the products are bound by arithmetic
// there, not by the weight stream. Every other dtype stays here at any row
// count: int8, int4 and f16 weights would otherwise be converted to bf16 or
// f32 tiles every step, and f32 steps took 1.05-1.27x the time through oneDNN's
// sgemm at 17-32 rows (docs/results/decode.md, "More rows than a GEMV").
void gemm(WorkPool& pool, Int16RowBuffer& xq_buffer, std::vector<uint16_t>& bf16_buffer,
          const WeightRows& w, int in, int out, const float* x, int rows, const float* bias,
          float* y) {
  if (rows > kSmallGemmMaxRows && bf16_gemm_rows(pool, w, in, out, x, rows, bias, y, bf16_buffer))
    return;
  const GemmRows xr = prepare_gemm_rows(w, in, x, in, rows, xq_buffer);
  const std::size_t unit_bytes = std::size_t{kUnitRows} * weight_row_bytes(w.type, in);
  const std::size_t own_bytes = rows == 1 ? kOwnTakeBytesOneRow : kOwnTakeBytes;
  const int own = static_cast<int>(std::max<std::size_t>(1, own_bytes / unit_bytes));
  const int T = pool.threads();
  ShareClaims claims;
  claims.reset((out + kUnitRows - 1) / kUnitRows, T);
  pool.run(T, [&](int, int t) {
    for (auto c = claims.next(t, own); c.count > 0; c = claims.next(t, own))
      small_gemm(w, in, xr, rows, bias, y, out, c.first * kUnitRows,
                 std::min(out, (c.first + c.count) * kUnitRows));
  });
}

// cos / sin [rows][ld] of each row's position by the table inv_freq.
void step_angles(const at::Tensor& inv_freq, std::span<const int64_t> pos, int ld, float* cos,
                 float* sin) {
  const int half = static_cast<int>(inv_freq.numel());
  for (std::size_t b = 0; b < pos.size(); ++b)
    rope_angles(static_cast<float>(pos[b]), inv_freq.data_ptr<float>(), half, cos + b * ld,
                sin + b * ld);
}

}  // namespace

// Standard attention (every RoPE mode) of layer l for the step's rows: the
// rows' queries and keys rotated or mapped as the mode wants, keys and
// values written to the paged cache, then one task per (row, key head)
// through the paged kernels into f.att.
void BatchDecoder::fused_attention(int l, std::span<const int> ids, std::span<const int64_t> pos,
                                   int max_half) {
  const ModelConfig& c = model_->config;
  FusedStep& f = *fused_;
  const FusedStep::Layer& fl = f.layers[l];
  const int B = static_cast<int>(ids.size()), H = c.n_heads, Hkv = c.n_kv_heads;
  const int d = c.head_dim, nk = c.key_heads(), share = c.key_share(), G = H / nk;
  const int r = c.key_width(l), qr = c.q_rows_per_head(l), kr = c.k_rows(l);
  const bool rope = c.positions == PositionKind::Rope;
  const RopeMode mode = c.rope_mode();
  // A thin key's own table over the key width (RopeTable::KeyWidth).
  const bool own = rope && mode == RopeMode::Full && fl.inv_freq.defined();
  if (own) step_angles(fl.inv_freq, pos, max_half, f.layer_cos.data(), f.layer_sin.data());
  const float* cos_l = own ? f.layer_cos.data() : f.cos.data();
  const float* sin_l = own ? f.layer_sin.data() : f.sin.data();
  // The query width attention sees: the thin key's (Full, Pairs, Post) or
  // the head's (Latent, whose kernel rebuilds and rotates full keys).
  const int qw = mode == RopeMode::Latent ? d : r;
  tasks_.clear();
  value_rows_.clear();
  task_latent_.clear();
  value_rows_.reserve(std::size_t(B) * Hkv);  // tasks point into it
  for (int b = 0; b < B; ++b) {
    float* q = f.qkv.data() + std::size_t(b) * fl.n_qkv;
    float* k = q + H * qr;
    float* v = k + kr;
    const float* cs = cos_l + b * max_half;
    const float* sn = sin_l + b * max_half;
    switch (mode) {
      case RopeMode::Full:
        if (rope) {
          rope_rotate_half(q, H, qr, qr, cs, sn);
          rope_rotate_half(k, nk, r, r, cs, sn);
        }
        break;
      case RopeMode::Pairs:
        // Each KV head rotates its own kept planes; its query heads too.
        for (int kh = 0; rope && kh < nk; ++kh) {
          float* lc = f.layer_cos.data() + b * max_half;
          float* ls = f.layer_sin.data() + b * max_half;
          rope_angles(static_cast<float>(pos[b]), fl.inv_freq.data_ptr<float>() + kh * (r / 2),
                      r / 2, lc, ls);
          rope_rotate_half(q + kh * G * qr, G, qr, qr, lc, ls);
          rope_rotate_half(k + kh * r, 1, r, r, lc, ls);
        }
        break;
      case RopeMode::Latent:
        // The cache keeps the unrotated latent; the kernel rotates keys.
        if (rope) rope_rotate_half(q, H, d, d, cs, sn);
        break;
      case RopeMode::Post: {
        if (rope) {
          rope_rotate_half(q, H, d, d, cs, sn);
          rope_rotate_half(k, Hkv, d, d, cs, sn);
        }
        float* qm = f.qmap.data() + std::size_t(b) * H * r;
        float* km = f.kmap.data() + std::size_t(b) * nk * r;
        const float* qd = fl.q_down_t.data_ptr<float>();
        const float* kd = fl.k_down_t.data_ptr<float>();
        for (int h = 0; h < H; ++h)
          small_gemm(qd + std::size_t(h) * r * d, d, d, q + h * d, d, 1, nullptr, qm + h * r, r, 0,
                     r);
        const int sd = share * d;
        for (int kh = 0; kh < nk; ++kh)
          small_gemm(kd + std::size_t(kh) * r * sd, sd, sd, k + kh * sd, sd, 1, nullptr,
                     km + kh * r, r, 0, r);
        q = qm;
        k = km;
        break;
      }
    }
    const int id = ids[b], p = static_cast<int>(pos[b]);
    for (int kh = 0; kh < nk; ++kh) cache_.write_key(id, l, kh, p, k + kh * r);
    for (int vh = 0; vh < Hkv; ++vh) {
      cache_.write_value(id, l, vh, p, v + vh * d);
      value_rows_.push_back(cache_.values(id, l, vh));
    }
    const int end = p + 1;
    const int begin = c.sliding_window ? std::max(0, end - *c.sliding_window) : 0;
    for (int kh = 0; kh < nk; ++kh)
      add_head_tasks(l, id, kh, q + kh * G * qw, qw,
                     &value_rows_[std::size_t(b) * Hkv + kh * share], begin, end,
                     f.att.data() + (std::size_t(b) * H + kh * G) * d);
  }
  splits_.run(shape_, tasks_, task_latent_, *pool_, scratch_);
}

void BatchDecoder::fused_rows(std::span<const int> ids, std::span<const int32_t> tokens,
                              std::span<const int64_t> pos, float* logits) {
  const ModelConfig& c = model_->config;
  FusedStep& f = *fused_;
  if (f.layers.empty()) {  // first step: the model's matrices as plain layouts
    const auto& w = model_->weights;
    auto keep = [](const at::Tensor& t) { return t.defined() ? t.contiguous() : t; };
    for (const LayerWeights& L : w.layers) {
      FusedStep::Layer fl;
      fl.qkv = weight_rows(L.wqkv, L.wqkv_scales);
      fl.n_qkv = static_cast<int>(L.wqkv.size(0));
      fl.o = weight_rows(L.wo, L.wo_scales);
      if (c.mlp == MlpKind::SwiGLU) {
        fl.up = weight_rows(L.w_gate_up, L.w_gate_up_scales);
        fl.n_up = static_cast<int>(L.w_gate_up.size(0));
        fl.b_up = keep(L.b_gate_up);
      } else {
        fl.up = weight_rows(L.w_up, L.w_up_scales);
        fl.n_up = static_cast<int>(L.w_up.size(0));
        fl.b_up = keep(L.b_up);
      }
      fl.down = weight_rows(L.w_down, L.w_down_scales);
      fl.b_qkv = keep(L.bqkv);
      fl.b_o = keep(L.bo);
      fl.b_down = keep(L.b_down);
      fl.norm1 = keep(L.attn_norm);
      fl.norm1_b = keep(L.attn_norm_bias);
      fl.norm2 = keep(L.mlp_norm);
      fl.norm2_b = keep(L.mlp_norm_bias);
      fl.inv_freq = keep(L.rope_inv_freq);
      if (c.rope_mode() == RopeMode::Post) {
        fl.q_down_t = L.q_down.to(at::kFloat).transpose(1, 2).contiguous();
        fl.k_down_t = L.k_down.to(at::kFloat).transpose(1, 2).contiguous();
      }
      f.layers.push_back(std::move(fl));
    }
    f.emb = weight_rows(w.tok_emb, w.tok_emb_scales);
    f.head = weight_rows(w.lm_head, w.lm_head_scales);
    f.final_norm = keep(w.final_norm);
    f.final_norm_b = keep(w.final_norm_bias);
    f.pos_emb = keep(w.pos_emb);
    f.inv_freq = keep(model_->rope_inv_freq);
  }
  const int B = static_cast<int>(ids.size()), D = c.dim, H = c.n_heads, d = c.head_dim;
  const bool rope = c.positions == PositionKind::Rope;
  const int table_half = rope ? static_cast<int>(f.inv_freq.numel()) : 0;
  int max_qkv = 0, max_up = 0, max_half = table_half;
  for (const auto& fl : f.layers) {
    max_qkv = std::max(max_qkv, fl.n_qkv);
    max_up = std::max(max_up, fl.n_up);
    if (fl.inv_freq.defined())
      max_half = std::max(max_half, static_cast<int>(fl.inv_freq.size(-1)));
  }
  auto grow = [](std::vector<float>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
  };
  grow(f.x, std::size_t(B) * D);
  grow(f.h, std::size_t(B) * D);
  grow(f.tmp, std::size_t(B) * D);
  grow(f.qkv, std::size_t(B) * max_qkv);
  grow(f.att, std::size_t(B) * H * d);
  grow(f.up, std::size_t(B) * max_up);
  grow(f.act, std::size_t(B) * max_up);
  for (auto* v : {&f.cos, &f.sin, &f.layer_cos, &f.layer_sin}) grow(*v, std::size_t(B) * max_half);
  const RopeMode mode = c.rope_mode();
  if (mode == RopeMode::Post) {
    int max_r = 0;
    for (int l = 0; l < c.n_layers; ++l) max_r = std::max(max_r, c.key_width(l));
    grow(f.qmap, std::size_t(B) * H * max_r);
    grow(f.kmap, std::size_t(B) * c.key_heads() * max_r);
  }

  Int16RowBuffer& xq = f.xq;
  float* x = f.x.data();
  for (int b = 0; b < B; ++b) {
    weight_rows_to_f32(f.emb, D, tokens[b], tokens[b] + 1, x + b * D);
    if (c.positions == PositionKind::Learned)
      add_to(x + b * D, f.pos_emb.data_ptr<float>() + pos[b] * D, D);
  }
  if (rope) step_angles(f.inv_freq, pos, max_half, f.cos.data(), f.sin.data());
  auto norm = [&](const at::Tensor& w, const at::Tensor& bias, const float* in, float* out) {
    for (int b = 0; b < B; ++b) {
      if (c.norm == NormKind::RMSNorm)
        rms_norm_row(in + b * D, w.data_ptr<float>(), D, static_cast<float>(c.norm_eps),
                     out + b * D);
      else
        layer_norm_row(in + b * D, w.data_ptr<float>(), ptr(bias), D,
                       static_cast<float>(c.norm_eps), out + b * D);
    }
  };

  for (int l = 0; l < c.n_layers; ++l) {
    const FusedStep::Layer& fl = f.layers[l];
    norm(fl.norm1, fl.norm1_b, x, f.h.data());
    gemm(*pool_, xq, f.xb, fl.qkv, D, fl.n_qkv, f.h.data(), B, ptr(fl.b_qkv), f.qkv.data());
    if (variant_) {
      variant_attention(l, ids, f.qkv.data(), static_cast<std::size_t>(fl.n_qkv), f.cos.data(),
                        f.sin.data(), static_cast<std::size_t>(max_half), pos, f.att.data());
    } else {
      fused_attention(l, ids, pos, max_half);
    }
    gemm(*pool_, xq, f.xb, fl.o, H * d, D, f.att.data(), B, ptr(fl.b_o), f.tmp.data());
    add_to(x, f.tmp.data(), B * D);
    norm(fl.norm2, fl.norm2_b, x, f.h.data());
    gemm(*pool_, xq, f.xb, fl.up, D, fl.n_up, f.h.data(), B, ptr(fl.b_up), f.up.data());
    const int F = c.hidden_dim;
    for (int b = 0; b < B; ++b) {
      const float* u = f.up.data() + std::size_t(b) * fl.n_up;
      if (c.mlp == MlpKind::SwiGLU)
        silu_mul(u, u + F, F, f.act.data() + std::size_t(b) * F);
      else
        gelu_tanh(u, F, f.act.data() + std::size_t(b) * F);
    }
    gemm(*pool_, xq, f.xb, fl.down, F, D, f.act.data(), B, ptr(fl.b_down), f.tmp.data());
    add_to(x, f.tmp.data(), B * D);
  }
  norm(f.final_norm, f.final_norm_b, x, f.h.data());
  gemm(*pool_, xq, f.xb, f.head, D, c.vocab_size, f.h.data(), B, nullptr, logits);
}

}  // namespace thinkeys

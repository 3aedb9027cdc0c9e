#include "model/weights.h"

#include <cmath>
#include <utility>

#include "util/error.h"
#include "util/huge_page_arena.h"

namespace thinkeys {

// Weights live in the weight arena, on transparent huge pages: a decode step
// streams every weight once, and on 4 KiB pages the walks cost a third of
// the GEMV's rate where THP is "madvise" (util/huge_page_memory.h).
at::Tensor empty_on_huge_pages(at::IntArrayRef sizes, at::ScalarType dtype) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  const auto bytes = static_cast<std::size_t>(n) * at::elementSize(dtype);
  HugePageArena::Allocation a = weight_arena().allocate(bytes);
  return at::from_blob(
      a.data, sizes, [chunk = std::move(a.chunk)](void*) {}, at::TensorOptions().dtype(dtype));
}

// Tensors that need gradients or live off the CPU stay as they are.
at::Tensor on_huge_pages(const at::Tensor& t) {
  if (!t.defined() || t.requires_grad() || !t.device().is_cpu() || t.nbytes() == 0) return t;
  at::Tensor out = empty_on_huge_pages(t.sizes(), t.scalar_type());
  out.copy_(t);
  return out;
}

namespace {

at::Tensor maybe_cat(const std::vector<at::Tensor>& parts) {
  for (const auto& p : parts)
    if (!p.defined()) return {};
  return at::cat(parts, 0).contiguous();
}

}  // namespace

std::vector<int64_t> expected_shape_q(const ModelConfig& c, int layer) {
  return {static_cast<int64_t>(c.n_heads) * c.q_rows_per_head(layer), c.dim};
}
std::vector<int64_t> expected_shape_k(const ModelConfig& c, int layer) {
  return {c.k_rows(layer), c.dim};
}

void Model::finalize() {
  if (weights.tok_emb_scales.defined())
    throw Error("int8 / int4 weights cannot be re-fused; load the model again to change it");
  for (auto& L : weights.layers) {
    // Everything the layer input feeds goes into one GEMM; the parts become
    // views (MLA has no wv, LRKV adds its residual down-projections).
    std::vector<at::Tensor*> parts;
    for (at::Tensor* t : {&L.wq, &L.wk, &L.wv, &L.k_res_down, &L.v_res_down})
      if (t->defined()) parts.push_back(t);
    std::vector<at::Tensor> cat_parts;
    for (at::Tensor* t : parts) cat_parts.push_back(*t);
    L.wqkv = on_huge_pages(at::cat(cat_parts, 0).contiguous());
    int64_t offset = 0;
    for (at::Tensor* t : parts) {
      const int64_t rows = t->size(0);
      *t = L.wqkv.narrow(0, offset, rows);
      offset += rows;
    }
    const int64_t nq = L.wq.size(0), nk = L.wk.size(0), nv = L.wv.defined() ? L.wv.size(0) : 0;
    if (L.bq.defined() || L.bk.defined() || L.bv.defined()) {
      auto zeros_if_missing = [](const at::Tensor& b, int64_t n) {
        return b.defined() ? b : at::zeros({n}, at::kFloat);
      };
      L.bqkv = at::cat({zeros_if_missing(L.bq, nq), zeros_if_missing(L.bk, nk),
                        zeros_if_missing(L.bv, nv)})
                   .contiguous();
      L.bq = L.bqkv.narrow(0, 0, nq);
      L.bk = L.bqkv.narrow(0, nq, nk);
      L.bv = L.bqkv.narrow(0, nq + nk, nv);
    } else {
      L.bqkv = at::Tensor();
    }
    if (config.mlp == MlpKind::SwiGLU) {
      int64_t f = L.w_gate.size(0);
      L.w_gate_up = on_huge_pages(at::cat({L.w_gate, L.w_up}, 0).contiguous());
      L.w_gate = L.w_gate_up.narrow(0, 0, f);
      L.w_up = L.w_gate_up.narrow(0, f, f);
      L.b_gate_up = maybe_cat({L.b_gate, L.b_up});
      if (L.b_gate_up.defined()) {
        L.b_gate = L.b_gate_up.narrow(0, 0, f);
        L.b_up = L.b_gate_up.narrow(0, f, f);
      }
    }
  }
  for (auto& L : weights.layers) {
    for (at::Tensor* t :
         {&L.wo, &L.w_down, &L.k_down, &L.q_down, &L.k_up, &L.kv_up, &L.k_res_up, &L.v_res_up})
      *t = on_huge_pages(*t);
    if (config.mlp != MlpKind::SwiGLU) L.w_up = on_huge_pages(L.w_up);
  }
  weights.tok_emb = on_huge_pages(weights.tok_emb);
  if (config.tied_embeddings)
    weights.lm_head = weights.tok_emb;
  else
    weights.lm_head = on_huge_pages(weights.lm_head);
  // Per-layer tables follow the config: stale ones would silently rotate with
  // frequencies the config no longer names.
  for (auto& L : weights.layers) L.rope_inv_freq = at::Tensor();
  if (config.positions == PositionKind::Rope) {
    auto frequencies = [&](int width) {
      at::Tensor f = at::empty({width / 2}, at::kFloat);
      auto* p = f.data_ptr<float>();
      for (int i = 0; i < width / 2; ++i)
        p[i] = static_cast<float>(1.0 / std::pow(config.rope_theta, 2.0 * i / width));
      return f;
    };
    rope_inv_freq = frequencies(config.rope_table_dim());
    if (config.rope_table == RopeTable::KeyWidth)
      for (int l = 0; l < config.n_layers; ++l)
        weights.layers[l].rope_inv_freq = frequencies(config.key_width(l));
    if (config.rope_mode() == RopeMode::Pairs) {
      for (int l = 0; l < config.n_layers; ++l) {
        const auto& planes = config.rope_planes[l];
        at::Tensor idx = at::empty({config.n_kv_heads, config.key_width(l) / 2}, at::kLong);
        for (int g = 0; g < config.n_kv_heads; ++g)
          for (size_t j = 0; j < planes[g].size(); ++j)
            idx[g][static_cast<int64_t>(j)] = planes[g][j];
        weights.layers[l].rope_inv_freq = rope_inv_freq.index({idx});
      }
    }
  }
}

int64_t Model::parameter_count() const {
  int64_t n = weights.tok_emb.numel();
  if (weights.pos_emb.defined()) n += weights.pos_emb.numel();
  for (const auto& L : weights.layers) {
    for (const at::Tensor* t : {&L.attn_norm, &L.attn_norm_bias, &L.wqkv, &L.bqkv, &L.wo, &L.bo,
                                &L.mlp_norm, &L.mlp_norm_bias, &L.w_down, &L.b_down, &L.k_down,
                                &L.q_down, &L.k_up, &L.kv_norm, &L.kv_up, &L.k_res_up, &L.v_res_up})
      if (t->defined()) n += t->numel();
    if (config.mlp == MlpKind::SwiGLU) {
      n += L.w_gate_up.numel();
      if (L.b_gate_up.defined()) n += L.b_gate_up.numel();
    } else {
      n += L.w_up.numel();
      if (L.b_up.defined()) n += L.b_up.numel();
    }
  }
  n += weights.final_norm.numel();
  if (weights.final_norm_bias.defined()) n += weights.final_norm_bias.numel();
  if (!config.tied_embeddings) n += weights.lm_head.numel();
  return n;
}

bool packed_tensor(const at::Tensor& t) {
  return t.defined() && (t.scalar_type() == at::kChar || t.scalar_type() == at::kByte);
}

namespace {

// Bytes of t and of its int8 / int4 scales, if any.
int64_t bytes_of(const at::Tensor& t, const at::Tensor& scales = {}) {
  int64_t n = !t.defined()       ? 0
              : packed_tensor(t) ? static_cast<int64_t>(t.storage().nbytes())
                                 : static_cast<int64_t>(t.nbytes());
  if (scales.defined()) n += static_cast<int64_t>(scales.nbytes());
  return n;
}

// Bytes of every weight a decode step reads in full (not the embedding or
// position tables, of which it reads one row).
int64_t streamed_bytes(const Model& m) {
  const auto& w = m.weights;
  int64_t n =
      bytes_of(w.final_norm) + bytes_of(w.final_norm_bias) + bytes_of(w.lm_head, w.lm_head_scales);
  for (const auto& L : w.layers) {
    n += bytes_of(L.wqkv, L.wqkv_scales) + bytes_of(L.wo, L.wo_scales) +
         bytes_of(L.w_down, L.w_down_scales);
    n += m.config.mlp == MlpKind::SwiGLU
             ? bytes_of(L.w_gate_up, L.w_gate_up_scales) + bytes_of(L.b_gate_up)
             : bytes_of(L.w_up, L.w_up_scales) + bytes_of(L.b_up);
    for (const at::Tensor* t :
         {&L.attn_norm, &L.attn_norm_bias, &L.bqkv, &L.bo, &L.mlp_norm, &L.mlp_norm_bias, &L.b_down,
          &L.k_down, &L.q_down, &L.k_up, &L.kv_norm, &L.kv_up, &L.k_res_up, &L.v_res_up})
      n += bytes_of(*t);
  }
  return n;
}

}  // namespace

int64_t Model::weight_bytes() const { return streamed_bytes(*this); }

int64_t Model::resident_bytes() const {
  int64_t n = streamed_bytes(*this) + bytes_of(weights.pos_emb);
  if (!config.tied_embeddings) n += bytes_of(weights.tok_emb, weights.tok_emb_scales);
  return n;
}

}  // namespace thinkeys

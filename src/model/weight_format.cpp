#include "model/weight_format.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "util/enum_names.h"
#include "util/error.h"
#include "util/threads.h"
#include "util/work_pool.h"

namespace thinkeys {
namespace {

at::ScalarType float_type(WeightFormat f) {
  return f == WeightFormat::BF16 ? at::kBFloat16 : f == WeightFormat::F16 ? at::kHalf : at::kFloat;
}

at::Tensor to_f32(const at::Tensor& t) {
  return t.defined() && t.scalar_type() != at::kFloat ? t.to(at::kFloat) : t;
}

// One streamed matrix in `format`; `scales` receives int8 / int4 scales.
at::Tensor convert_matrix(const at::Tensor& w, WeightFormat format, at::Tensor& scales) {
  scales = at::Tensor();
  if (!w.defined()) return w;
  if (!packed_format(format)) {
    const at::ScalarType st = float_type(format);
    return w.scalar_type() == st ? w : on_huge_pages(w.to(st).contiguous());
  }
  at::Tensor levels;
  std::tie(levels, scales) = format == WeightFormat::Int8 ? quantize_int8(w) : quantize_int4(w);
  return levels;
}

// MLA's and LRKV's per-head maps: a step reads them whole, as it reads the
// matrices (held as f32, MLA's were 9% of the bench MLA model's bf16 step),
// but applies them on either side of attention (runtime/variant_rows.h),
// transposed on the query side, which the packed int8 / int4 blocks are not
// laid out for; so models whose matrices are int8 or int4 hold them as bf16.
at::Tensor convert_map(const at::Tensor& w, WeightFormat format) {
  if (!w.defined()) return w;
  const at::ScalarType st = packed_format(format) ? at::kBFloat16 : float_type(format);
  return w.scalar_type() == st ? w : on_huge_pages(w.to(st).contiguous());
}

// Views that finalize() made into a fused matrix, made again into its
// converted copy (the old views would keep the old storage alive).
void renarrow(const at::Tensor& fused, std::vector<at::Tensor*> parts) {
  int64_t offset = 0;
  for (at::Tensor* t : parts) {
    if (!t->defined()) continue;
    const int64_t rows = t->size(0);
    *t = fused.narrow(0, offset, rows);
    offset += rows;
  }
}

using RowQuantizer = void (*)(const float*, std::size_t, int, int, int8_t*, std::size_t, float*,
                              std::size_t);

// Row-major levels [rows, cols] and `groups` scales a row of the f32 matrix
// f, by `quantize` (quantize_int8_rows or quantize_int4_rows) in chunks of
// rows on the compute pool: each row is independent, and int4's scale search
// is a visible part of a load (the bench's 110M weights: 0.6 s over bf16's
// load on two threads).
void quantize_on_pool(RowQuantizer quantize, const at::Tensor& f, int groups,
                      std::vector<int8_t>& levels, std::vector<float>& scales) {
  const int rows = static_cast<int>(f.size(0)), cols = static_cast<int>(f.size(1));
  levels.resize(static_cast<std::size_t>(rows) * cols);
  scales.resize(static_cast<std::size_t>(rows) * groups);
  const float* src = f.data_ptr<float>();
  constexpr int kChunk = 256;
  compute_pool()->run((rows + kChunk - 1) / kChunk, [&](int c, int) {
    const std::size_t r0 = std::size_t(c) * kChunk;
    quantize(src + r0 * cols, cols, std::min(rows - static_cast<int>(r0), kChunk), cols,
             levels.data() + r0 * cols, cols, scales.data() + r0 * groups, groups);
  });
}

}  // namespace

std::pair<at::Tensor, at::Tensor> quantize_int8(const at::Tensor& w) {
  if (w.dim() != 2) throw Error("quantize_int8: need a 2-D matrix");
  const at::Tensor f = to_f32(w).contiguous();
  const int rows = static_cast<int>(f.size(0)), cols = static_cast<int>(f.size(1));
  const int groups = weight_groups(cols), blocks = int8_blocks(rows);
  std::vector<int8_t> levels;
  std::vector<float> row_scales;
  quantize_on_pool(quantize_int8_rows, f, groups, levels, row_scales);
  // The packed bytes (kernels/weight_rows.h) under a [rows, cols] view, so
  // that shapes read as the matrix's; only weight_rows() reads the bytes.
  at::Tensor packed =
      empty_on_huge_pages({blocks * kInt8BlockRows, int8_padded_cols(cols)}, at::kChar);
  at::Tensor scales = empty_on_huge_pages({blocks, groups, kInt8BlockRows}, at::kHalf);
  pack_int8_rows(levels.data(), cols, row_scales.data(), groups, rows, cols,
                 packed.data_ptr<int8_t>(), reinterpret_cast<uint16_t*>(scales.data_ptr()));
  return {packed.narrow(0, 0, rows).narrow(1, 0, cols), scales};
}

std::pair<at::Tensor, at::Tensor> quantize_int4(const at::Tensor& w) {
  if (w.dim() != 2) throw Error("quantize_int4: need a 2-D matrix");
  const at::Tensor f = to_f32(w).contiguous();
  const int rows = static_cast<int>(f.size(0)), cols = static_cast<int>(f.size(1));
  const int groups = int4_groups(cols), blocks = int8_blocks(rows);
  const int row_groups = (cols + kInt4Group - 1) / kInt4Group;
  std::vector<int8_t> levels;
  std::vector<float> row_scales;
  quantize_on_pool(quantize_int4_rows, f, row_groups, levels, row_scales);
  // Half a padded row past the packing, so that the overlapping [rows, cols]
  // view (stride half a padded row) ends inside the storage.
  const int64_t half_row = int8_padded_cols(cols) / 2;
  const int64_t packed_bytes = blocks * static_cast<int64_t>(int4_block_bytes(cols));
  at::Tensor storage = empty_on_huge_pages({packed_bytes + half_row}, at::kByte);
  at::Tensor scales = empty_on_huge_pages({blocks, groups, kInt8BlockRows}, at::kHalf);
  pack_int4_rows(levels.data(), cols, row_scales.data(), row_groups, rows, cols,
                 storage.data_ptr<uint8_t>(), reinterpret_cast<uint16_t*>(scales.data_ptr()));
  return {storage.as_strided({rows, cols}, {half_row, 1}), scales};
}

namespace {
// Hugging Face's torch_dtype spellings are accepted too.
constexpr EnumName<WeightFormat> kWeightFormats[] = {
    {WeightFormat::F32, "f32"},       {WeightFormat::BF16, "bf16"},  {WeightFormat::F16, "f16"},
    {WeightFormat::Int8, "int8"},     {WeightFormat::Int4, "int4"},  {WeightFormat::F32, "float32"},
    {WeightFormat::BF16, "bfloat16"}, {WeightFormat::F16, "float16"}};
}  // namespace

WeightFormat parse_weight_format(const std::string& name) {
  return parse_enum<WeightFormat>(kWeightFormats, name, "weight format");
}

const char* weight_format_name(WeightFormat f) {
  return enum_name<WeightFormat>(kWeightFormats, f);
}

WeightFormat stored_weight_format(const ModelConfig& c) {
  if (c.weight_dtype == "bfloat16") return WeightFormat::BF16;
  if (c.weight_dtype == "float16") return WeightFormat::F16;
  return WeightFormat::F32;
}

WeightFormat current_weight_format(const Model& m) {
  const at::Tensor& e = m.weights.tok_emb;
  if (!e.defined()) return WeightFormat::F32;
  switch (e.scalar_type()) {
    case at::kBFloat16:
      return WeightFormat::BF16;
    case at::kHalf:
      return WeightFormat::F16;
    case at::kChar:
      return WeightFormat::Int8;
    case at::kByte:
      return WeightFormat::Int4;
    default:
      return WeightFormat::F32;
  }
}

void convert_weights(Model& m, WeightFormat format) {
  const WeightFormat now = current_weight_format(m);
  if (packed_format(now) && format != now)
    throw Error(std::string(weight_format_name(now)) +
                " weights cannot be converted; load the model again");
  if (packed_format(now)) return;
  const bool swiglu = m.config.mlp == MlpKind::SwiGLU;
  for (auto& L : m.weights.layers) {
    L.wqkv = convert_matrix(L.wqkv, format, L.wqkv_scales);
    renarrow(L.wqkv, {&L.wq, &L.wk, &L.wv, &L.k_res_down, &L.v_res_down});
    L.wo = convert_matrix(L.wo, format, L.wo_scales);
    L.w_down = convert_matrix(L.w_down, format, L.w_down_scales);
    if (swiglu) {
      L.w_gate_up = convert_matrix(L.w_gate_up, format, L.w_gate_up_scales);
      renarrow(L.w_gate_up, {&L.w_gate, &L.w_up});
    } else {
      L.w_up = convert_matrix(L.w_up, format, L.w_up_scales);
    }
    for (at::Tensor* t :
         {&L.attn_norm, &L.attn_norm_bias, &L.bqkv, &L.bo, &L.mlp_norm, &L.mlp_norm_bias,
          &L.b_gate_up, &L.b_down, &L.k_down, &L.q_down, &L.k_up, &L.kv_norm, &L.rope_inv_freq})
      *t = to_f32(*t);
    for (at::Tensor* t : {&L.kv_up, &L.k_res_up, &L.v_res_up}) *t = convert_map(*t, format);
    // The bias views follow their fused tensor, as finalize() made them.
    if (L.bqkv.defined()) {
      const int64_t nq = L.wq.size(0), nk = L.wk.size(0);
      L.bq = L.bqkv.narrow(0, 0, nq);
      L.bk = L.bqkv.narrow(0, nq, nk);
      L.bv = L.bqkv.narrow(0, nq + nk, L.bqkv.size(0) - nq - nk);
    }
    if (swiglu && L.b_gate_up.defined()) {
      const int64_t f = L.w_gate.size(0);
      L.b_gate = L.b_gate_up.narrow(0, 0, f);
      L.b_up = L.b_gate_up.narrow(0, f, f);
    } else if (!swiglu) {
      L.b_up = to_f32(L.b_up);
    }
  }
  auto& w = m.weights;
  w.tok_emb = convert_matrix(w.tok_emb, format, w.tok_emb_scales);
  if (m.config.tied_embeddings) {
    w.lm_head = w.tok_emb;
    w.lm_head_scales = w.tok_emb_scales;
  } else {
    w.lm_head = convert_matrix(w.lm_head, format, w.lm_head_scales);
  }
  w.pos_emb = to_f32(w.pos_emb);
  w.final_norm = to_f32(w.final_norm);
  w.final_norm_bias = to_f32(w.final_norm_bias);
  m.rope_inv_freq = to_f32(m.rope_inv_freq);
}

WeightRows weight_rows(const at::Tensor& w, const at::Tensor& scales) {
  if (w.dim() != 2 || !w.device().is_cpu() || w.stride(1) != 1)
    throw Error("weight_rows: need a row-major 2-D CPU matrix");
  WeightRows r;
  r.data = w.data_ptr();
  r.ld = static_cast<std::size_t>(w.stride(0));
  switch (w.scalar_type()) {
    case at::kFloat:
      r.type = WeightType::F32;
      break;
    case at::kBFloat16:
      r.type = WeightType::BF16;
      break;
    case at::kHalf:
      r.type = WeightType::F16;
      break;
    case at::kChar: {
      // Packed (convert_weights): the scales' [blocks, groups, 16] shape
      // marks the layout, and the levels must be the whole matrix, not a
      // view into part of it (the fused QKV's wq, wk, wv).
      const int64_t rows = w.size(0), cols = w.size(1);
      const int64_t blocks = int8_blocks(static_cast<int>(rows));
      const int64_t groups = weight_groups(static_cast<int>(cols));
      if (!scales.defined() || scales.scalar_type() != at::kHalf || scales.dim() != 3 ||
          scales.size(0) != blocks || scales.size(1) != groups ||
          scales.size(2) != kInt8BlockRows || !scales.is_contiguous())
        throw Error("weight_rows: int8 weights without their packed f16 scales");
      if (w.storage_offset() != 0 || w.stride(0) != int8_padded_cols(static_cast<int>(cols)) ||
          static_cast<int64_t>(w.storage().nbytes()) <
              blocks * static_cast<int64_t>(int8_block_bytes(static_cast<int>(cols))))
        throw Error("weight_rows: int8 weights are read as a whole packed matrix, not a view");
      r.type = WeightType::Int8;
      r.ld = int8_block_bytes(static_cast<int>(cols));
      r.scales = static_cast<const uint16_t*>(scales.data_ptr());
      r.ld_scales = static_cast<std::size_t>(groups) * kInt8BlockRows;
      break;
    }
    case at::kByte: {
      // Packed int4 (quantize_int4): the same checks on its own layout.
      const int rows = static_cast<int>(w.size(0)), cols = static_cast<int>(w.size(1));
      const int64_t blocks = int8_blocks(rows), groups = int4_groups(cols);
      if (!scales.defined() || scales.scalar_type() != at::kHalf || scales.dim() != 3 ||
          scales.size(0) != blocks || scales.size(1) != groups ||
          scales.size(2) != kInt8BlockRows || !scales.is_contiguous())
        throw Error("weight_rows: int4 weights without their packed f16 scales");
      if (w.storage_offset() != 0 || w.stride(0) != int8_padded_cols(cols) / 2 ||
          static_cast<int64_t>(w.storage().nbytes()) <
              blocks * static_cast<int64_t>(int4_block_bytes(cols)))
        throw Error("weight_rows: int4 weights are read as a whole packed matrix, not a view");
      r.type = WeightType::Int4;
      r.ld = int4_block_bytes(cols);
      r.scales = static_cast<const uint16_t*>(scales.data_ptr());
      r.ld_scales = static_cast<std::size_t>(groups) * kInt8BlockRows;
      break;
    }
    default:
      throw Error("weight_rows: unsupported weight dtype");
  }
  return r;
}

}  // namespace thinkeys

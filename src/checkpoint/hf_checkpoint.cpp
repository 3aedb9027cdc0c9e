#include "checkpoint/hf_checkpoint.h"

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/hf_config.h"
#include "io/safetensors_index.h"
#include "model/weight_format.h"
#include "util/atomic_output.h"
#include "util/error.h"
#include "util/text_file.h"

namespace fs = std::filesystem;

namespace thinkeys {
namespace {

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

// All tensors of a checkpoint, possibly spread over shards.
class TensorSource {
 public:
  explicit TensorSource(const fs::path& dir) : dir_(dir) {
    auto index = dir / "model.safetensors.index.json";
    auto single = dir / "model.safetensors";
    if (fs::exists(index)) {
      std::map<std::string, size_t> opened;
      for (auto& [name, fname] : parse_safetensors_index(read_file_bytes(index), index.string())) {
        auto [it, fresh] = opened.try_emplace(fname, files_.size());
        if (fresh) files_.push_back(std::make_unique<SafetensorsFile>(dir / fname));
        owner_[name] = it->second;
      }
    } else if (fs::exists(single)) {
      files_.push_back(std::make_unique<SafetensorsFile>(single));
      for (const auto& [name, view] : files_[0]->tensors()) owner_[name] = 0;
    } else if (fs::exists(dir / "pytorch_model.bin")) {
      throw Error(dir.string() +
                  ": only safetensors checkpoints are supported (found pytorch_model.bin)");
    } else {
      throw Error(dir.string() + ": no model.safetensors or model.safetensors.index.json");
    }
  }

  bool contains(const std::string& name) const { return owner_.count(name) != 0; }

  const TensorView& view(const std::string& name) const {
    auto it = owner_.find(name);
    if (it == owner_.end())
      throw Error(dir_.string() + ": checkpoint has no tensor '" + name + "'");
    return files_[it->second]->at(name);
  }

  DType first_dtype() const {
    for (const auto& f : files_)
      for (const auto& [n, v] : f->tensors()) return v.dtype;
    return DType::F32;
  }

 private:
  fs::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;
};

class Reader {
 public:
  // keep_dtype: tensors come back in their stored dtype (F32/F16/BF16), for
  // models that run on 16-bit weights without ever holding them as f32.
  Reader(const TensorSource& src, std::string prefix, bool keep_dtype)
      : src_(src), prefix_(std::move(prefix)), keep_dtype_(keep_dtype) {}

  at::Tensor get(const std::string& name, std::vector<int64_t> shape) const {
    const auto& v = src_.view(prefix_ + name);
    at::Tensor t =
        keep_dtype_ ? tensor_as_stored(v, prefix_ + name) : tensor_to_float(v, prefix_ + name);
    if (t.sizes() != at::IntArrayRef(shape))
      throw Error("tensor '" + prefix_ + name + "' has shape " + shape_string(t.sizes()) +
                  " but config.json implies " + shape_string(shape));
    return t;
  }
  at::Tensor get_optional(const std::string& name, std::vector<int64_t> shape) const {
    return src_.contains(prefix_ + name) ? get(name, std::move(shape)) : at::Tensor();
  }
  bool has(const std::string& name) const { return src_.contains(prefix_ + name); }

 private:
  const TensorSource& src_;
  std::string prefix_;
  bool keep_dtype_;
};

void load_thin_maps(const Reader& r, const std::string& p, const ModelConfig& c, int layer,
                    LayerWeights& L) {
  const int64_t nk = c.key_heads(), sd = static_cast<int64_t>(c.key_share()) * c.head_dim;
  const int64_t rk = c.key_width(layer);
  if (c.rope_mode() == RopeMode::Post) {
    L.k_down = r.get(p + "k_down.weight", {nk, sd, rk});
    L.q_down = r.get(p + "q_down.weight", {c.n_heads, c.head_dim, rk});
  } else if (c.rope_mode() == RopeMode::Latent) {
    L.k_up = r.get(p + "k_up.weight", {nk, sd, rk});
  }
}

void load_gpt2(const TensorSource& src, Model& m, bool keep_dtype) {
  const auto& c = m.config;
  std::string prefix = src.contains("transformer.wte.weight") ? "transformer." : "";
  Reader r(src, prefix, keep_dtype);
  const int64_t D = c.dim, F = c.hidden_dim;
  auto& w = m.weights;
  w.tok_emb = r.get("wte.weight", {c.vocab_size, D});
  w.pos_emb = r.get("wpe.weight", {c.max_positions, D});
  for (int i = 0; i < c.n_layers; ++i) {
    std::string p = "h." + std::to_string(i) + ".";
    LayerWeights L;
    L.attn_norm = r.get(p + "ln_1.weight", {D});
    L.attn_norm_bias = r.get(p + "ln_1.bias", {D});
    // Conv1D stores [in, out]; the fused c_attn output is [q | k | v] (q and k
    // narrower than v in a thin-key checkpoint).
    const int64_t nq = expected_shape_q(c, i)[0], nk = expected_shape_k(c, i)[0];
    at::Tensor c_attn = r.get(p + "attn.c_attn.weight", {D, nq + nk + D}).t();
    at::Tensor c_attn_b = r.get(p + "attn.c_attn.bias", {nq + nk + D});
    L.wq = c_attn.narrow(0, 0, nq).contiguous();
    L.wk = c_attn.narrow(0, nq, nk).contiguous();
    L.wv = c_attn.narrow(0, nq + nk, D).contiguous();
    L.bq = c_attn_b.narrow(0, 0, nq).contiguous();
    L.bk = c_attn_b.narrow(0, nq, nk).contiguous();
    L.bv = c_attn_b.narrow(0, nq + nk, D).contiguous();
    load_thin_maps(r, p + "attn.", c, i, L);
    L.wo = r.get(p + "attn.c_proj.weight", {D, D}).t().contiguous();
    L.bo = r.get(p + "attn.c_proj.bias", {D});
    L.mlp_norm = r.get(p + "ln_2.weight", {D});
    L.mlp_norm_bias = r.get(p + "ln_2.bias", {D});
    L.w_up = r.get(p + "mlp.c_fc.weight", {D, F}).t().contiguous();
    L.b_up = r.get(p + "mlp.c_fc.bias", {F});
    L.w_down = r.get(p + "mlp.c_proj.weight", {F, D}).t().contiguous();
    L.b_down = r.get(p + "mlp.c_proj.bias", {D});
    w.layers.push_back(std::move(L));
  }
  w.final_norm = r.get("ln_f.weight", {D});
  w.final_norm_bias = r.get("ln_f.bias", {D});
  Reader root(src, "", keep_dtype);
  if (!c.tied_embeddings) w.lm_head = root.get("lm_head.weight", {c.vocab_size, D});
}

void load_llama(const TensorSource& src, Model& m, bool keep_dtype) {
  const auto& c = m.config;
  Reader r(src, "model.", keep_dtype);
  const int64_t D = c.dim, F = c.hidden_dim, d = c.head_dim;
  auto& w = m.weights;
  w.tok_emb = r.get("embed_tokens.weight", {c.vocab_size, D});
  for (int i = 0; i < c.n_layers; ++i) {
    std::string p = "layers." + std::to_string(i) + ".";
    LayerWeights L;
    const int64_t nq = expected_shape_q(c, i)[0], nk = expected_shape_k(c, i)[0];
    L.attn_norm = r.get(p + "input_layernorm.weight", {D});
    L.wq = r.get(p + "self_attn.q_proj.weight", {nq, D});
    if (c.is_mla()) {
      // DeepSeek-V2's tensor names (without its optional query LoRA).
      const int64_t dc = c.attention.latent;
      L.wk = r.get(p + "self_attn.kv_a_proj_with_mqa.weight", {nk, D});
      L.kv_norm = r.get(p + "self_attn.kv_a_layernorm.weight", {dc});
      L.kv_up =
          r.get(p + "self_attn.kv_b_proj.weight", {c.n_heads * (c.attention.nope_dim + d), dc});
    } else {
      L.wk = r.get(p + "self_attn.k_proj.weight", {nk, D});
      L.wv = r.get(p + "self_attn.v_proj.weight", {c.v_rows(), D});
    }
    if (c.is_lrkv()) {
      const int64_t hr = c.n_heads * c.attention.rank, hd = c.n_heads * d, rk = c.attention.rank;
      L.k_res_down = r.get(p + "self_attn.k_res_a_proj.weight", {hr, D});
      L.k_res_up = r.get(p + "self_attn.k_res_b_proj.weight", {hd, rk});
      L.v_res_down = r.get(p + "self_attn.v_res_a_proj.weight", {hr, D});
      L.v_res_up = r.get(p + "self_attn.v_res_b_proj.weight", {hd, rk});
    }
    L.wo = r.get(p + "self_attn.o_proj.weight", {D, c.n_heads * d});
    if (c.qkv_bias) {
      L.bq = r.get(p + "self_attn.q_proj.bias", {nq});
      // Thin-key checkpoints may drop the key bias exactly (it shifts each score
      // row by a constant), so it may legitimately be absent.
      L.bk = c.thin_keys ? r.get_optional(p + "self_attn.k_proj.bias", {nk})
                         : r.get(p + "self_attn.k_proj.bias", {nk});
      L.bv = r.get(p + "self_attn.v_proj.bias", {c.n_kv_heads * d});
    }
    if (c.o_bias) L.bo = r.get(p + "self_attn.o_proj.bias", {D});
    load_thin_maps(r, p + "self_attn.", c, i, L);
    L.mlp_norm = r.get(p + "post_attention_layernorm.weight", {D});
    L.w_gate = r.get(p + "mlp.gate_proj.weight", {F, D});
    L.w_up = r.get(p + "mlp.up_proj.weight", {F, D});
    L.w_down = r.get(p + "mlp.down_proj.weight", {D, F});
    if (c.mlp_bias) {
      L.b_gate = r.get(p + "mlp.gate_proj.bias", {F});
      L.b_up = r.get(p + "mlp.up_proj.bias", {F});
      L.b_down = r.get(p + "mlp.down_proj.bias", {D});
    }
    w.layers.push_back(std::move(L));
  }
  w.final_norm = r.get("norm.weight", {D});
  Reader root(src, "", keep_dtype);
  if (!c.tied_embeddings) w.lm_head = root.get("lm_head.weight", {c.vocab_size, D});
}

struct NamedTensor {
  std::string name;
  at::Tensor t;
};

std::vector<NamedTensor> hf_tensors(const Model& m) {
  const auto& c = m.config;
  const auto& w = m.weights;
  std::vector<NamedTensor> out;
  auto add = [&](const std::string& n, const at::Tensor& t) {
    if (t.defined()) out.push_back({n, t});
  };
  if (c.model_type == "gpt2") {
    add("transformer.wte.weight", w.tok_emb);
    add("transformer.wpe.weight", w.pos_emb);
    for (int i = 0; i < c.n_layers; ++i) {
      const auto& L = w.layers[i];
      std::string p = "transformer.h." + std::to_string(i) + ".";
      add(p + "ln_1.weight", L.attn_norm);
      add(p + "ln_1.bias", L.attn_norm_bias);
      add(p + "attn.c_attn.weight", at::cat({L.wq, L.wk, L.wv}, 0).t());
      add(p + "attn.c_attn.bias", at::cat({L.bq, L.bk, L.bv}, 0));
      add(p + "attn.k_down.weight", L.k_down);
      add(p + "attn.q_down.weight", L.q_down);
      add(p + "attn.k_up.weight", L.k_up);
      add(p + "attn.c_proj.weight", L.wo.t());
      add(p + "attn.c_proj.bias", L.bo);
      add(p + "ln_2.weight", L.mlp_norm);
      add(p + "ln_2.bias", L.mlp_norm_bias);
      add(p + "mlp.c_fc.weight", L.w_up.t());
      add(p + "mlp.c_fc.bias", L.b_up);
      add(p + "mlp.c_proj.weight", L.w_down.t());
      add(p + "mlp.c_proj.bias", L.b_down);
    }
    add("transformer.ln_f.weight", w.final_norm);
    add("transformer.ln_f.bias", w.final_norm_bias);
  } else {
    add("model.embed_tokens.weight", w.tok_emb);
    for (int i = 0; i < c.n_layers; ++i) {
      const auto& L = w.layers[i];
      std::string p = "model.layers." + std::to_string(i) + ".";
      add(p + "input_layernorm.weight", L.attn_norm);
      add(p + "self_attn.q_proj.weight", L.wq);
      add(p + (c.is_mla() ? "self_attn.kv_a_proj_with_mqa.weight" : "self_attn.k_proj.weight"),
          L.wk);
      add(p + "self_attn.kv_a_layernorm.weight", L.kv_norm);
      add(p + "self_attn.kv_b_proj.weight", L.kv_up);
      add(p + "self_attn.v_proj.weight", L.wv);
      add(p + "self_attn.k_res_a_proj.weight", L.k_res_down);
      add(p + "self_attn.k_res_b_proj.weight", L.k_res_up);
      add(p + "self_attn.v_res_a_proj.weight", L.v_res_down);
      add(p + "self_attn.v_res_b_proj.weight", L.v_res_up);
      add(p + "self_attn.o_proj.weight", L.wo);
      add(p + "self_attn.k_down.weight", L.k_down);
      add(p + "self_attn.q_down.weight", L.q_down);
      add(p + "self_attn.k_up.weight", L.k_up);
      if (c.qkv_bias) {
        add(p + "self_attn.q_proj.bias", L.bq);
        add(p + "self_attn.k_proj.bias", L.bk);
        add(p + "self_attn.v_proj.bias", L.bv);
      }
      if (c.o_bias) add(p + "self_attn.o_proj.bias", L.bo);
      add(p + "post_attention_layernorm.weight", L.mlp_norm);
      add(p + "mlp.gate_proj.weight", L.w_gate);
      add(p + "mlp.up_proj.weight", L.w_up);
      add(p + "mlp.down_proj.weight", L.w_down);
      if (c.mlp_bias) {
        add(p + "mlp.gate_proj.bias", L.b_gate);
        add(p + "mlp.up_proj.bias", L.b_up);
        add(p + "mlp.down_proj.bias", L.b_down);
      }
    }
    add("model.norm.weight", w.final_norm);
  }
  if (!c.tied_embeddings) add("lm_head.weight", w.lm_head);
  return out;
}

const char* torch_dtype_name(DType d) {
  return d == DType::BF16 ? "bfloat16" : d == DType::F16 ? "float16" : "float32";
}

}  // namespace

at::Tensor tensor_as_stored(const TensorView& v, const std::string& where) {
  at::ScalarType st;
  switch (v.dtype) {
    case DType::F32:
      st = at::kFloat;
      break;
    case DType::F16:
      st = at::kHalf;
      break;
    case DType::BF16:
      st = at::kBFloat16;
      break;
    default:
      throw Error("tensor '" + where + "' has unsupported dtype " + dtype_name(v.dtype) +
                  " (supported: F32, F16, BF16)");
  }
  // Copy first: the mapping may not be aligned for the element type.
  at::Tensor raw = at::empty(v.shape, at::TensorOptions().dtype(st));
  if (!v.bytes.empty()) std::memcpy(raw.data_ptr(), v.bytes.data(), v.bytes.size());
  return raw;
}

DType dtype_for_saving(const std::string& choice, const ModelConfig& source) {
  if (choice == "f32") return DType::F32;
  if (choice == "f16") return DType::F16;
  if (choice == "bf16") return DType::BF16;
  if (!choice.empty() && choice != "stored")
    throw Error("unknown saved dtype '" + choice + "' (expected stored, f32, f16 or bf16)");
  switch (stored_weight_format(source)) {
    case WeightFormat::BF16:
      return DType::BF16;
    case WeightFormat::F16:
      return DType::F16;
    default:
      return DType::F32;
  }
}

at::Tensor tensor_to_float(const TensorView& v, const std::string& where) {
  at::Tensor raw = tensor_as_stored(v, where);
  return raw.scalar_type() == at::kFloat ? raw : raw.to(at::kFloat);
}

Model load_hf_checkpoint(const fs::path& dir, std::optional<WeightFormat> format) {
  if (!fs::is_directory(dir)) throw Error(dir.string() + " is not a directory");
  Model m;
  m.config = read_hf_config(dir / "config.json");
  m.config.source_format = "safetensors";
  TensorSource src(dir);
  DType stored = src.first_dtype();
  m.config.weight_dtype = torch_dtype_name(stored);
  const WeightFormat want = format.value_or(stored_weight_format(m.config));
  const bool keep_dtype = want != WeightFormat::F32;
  if (m.config.model_type == "gpt2")
    load_gpt2(src, m, keep_dtype);
  else
    load_llama(src, m, keep_dtype);
  m.finalize();
  if (keep_dtype) convert_weights(m, want);
  return m;
}

void write_hf_checkpoint(const Model& model, const fs::path& dir, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw Error("can only save weights as F32, F16 or BF16");
  if (current_weight_format(model) == WeightFormat::Int8)
    throw Error(
        "int8 weights are a load-time format and cannot be saved; load the model "
        "without --weights int8");
  at::ScalarType st = dtype == DType::F32   ? at::kFloat
                      : dtype == DType::F16 ? at::kHalf
                                            : at::kBFloat16;
  auto named = hf_tensors(model);
  std::vector<at::Tensor> keep;
  std::vector<TensorToWrite> out;
  keep.reserve(named.size());
  for (auto& nt : named) {
    keep.push_back(nt.t.to(st).contiguous());
    const auto& t = keep.back();
    out.push_back({nt.name, dtype, t.sizes().vec(),
                   std::span<const std::byte>(static_cast<const std::byte*>(t.data_ptr()),
                                              static_cast<size_t>(t.nbytes()))});
  }
  ModelConfig c = model.config;
  c.weight_dtype = torch_dtype_name(dtype);
  write_safetensors(dir / "model.safetensors", out, {{"format", "pt"}});
  write_text_atomically(dir / "config.json", hf_config_json(c));
}

}  // namespace thinkeys

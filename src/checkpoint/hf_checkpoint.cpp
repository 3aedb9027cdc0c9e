#include "checkpoint/hf_checkpoint.h"

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "checkpoint/hf_tensor_names.h"
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
  bool has_prefix(const std::string& prefix) const {
    auto it = owner_.lower_bound(prefix);
    return it != owner_.end() && it->first.starts_with(prefix);
  }

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

// The tensor in its stored dtype (F32/F16/BF16; anything else is an error).
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

// The tensor as f32.
at::Tensor tensor_to_float(const TensorView& v, const std::string& where) {
  at::Tensor raw = tensor_as_stored(v, where);
  return raw.scalar_type() == at::kFloat ? raw : raw.to(at::kFloat);
}

// The tensor `name` in the dtype the model will hold it in, checked against
// the shape config.json implies.
at::Tensor read_tensor(const TensorSource& src, const std::string& name,
                       const std::vector<int64_t>& shape, bool keep_dtype) {
  const auto& v = src.view(name);
  at::Tensor t = keep_dtype ? tensor_as_stored(v, name) : tensor_to_float(v, name);
  if (t.sizes() != at::IntArrayRef(shape))
    throw Error("tensor '" + name + "' has shape " + shape_string(t.sizes()) +
                " but config.json implies " + shape_string(shape));
  return t;
}

// keep_dtype: tensors come back in their stored dtype (F32/F16/BF16), for
// models that run on 16-bit weights without ever holding them as f32.
void load_weights(const TensorSource& src, Model& m, bool keep_dtype) {
  const HfTensorTable table = hf_tensor_table(m.config);
  const std::string& prefix = table.droppable_prefix;
  const bool drop_prefix = !prefix.empty() && !src.has_prefix(prefix);
  m.weights.layers.resize(m.config.n_layers);
  for (const HfTensor& t : table.tensors) {
    const std::string name =
        drop_prefix && t.name.starts_with(prefix) ? t.name.substr(prefix.size()) : t.name;
    if (t.optional && !src.contains(name)) continue;
    at::Tensor v = read_tensor(src, name, t.shape, keep_dtype);
    if (t.transposed) v = v.t();
    if (t.parts.size() == 1) {
      t.parts[0].in(m.weights) = t.transposed ? v.contiguous() : v;
      continue;
    }
    int64_t row = 0;
    for (const WeightSlot& part : t.parts) {
      part.in(m.weights) = v.narrow(0, row, part.rows).contiguous();
      row += part.rows;
    }
  }
}

struct NamedTensor {
  std::string name;
  at::Tensor t;
};

// The model's tensors under their checkpoint names; tensors the model does
// not have (e.g. a dropped key bias) are left out.
std::vector<NamedTensor> hf_tensors(const Model& m) {
  std::vector<NamedTensor> out;
  for (const HfTensor& t : hf_tensor_table(m.config).tensors) {
    std::vector<at::Tensor> parts;
    size_t defined = 0;
    for (const WeightSlot& part : t.parts) {
      parts.push_back(part.in(m.weights));
      defined += parts.back().defined();
    }
    if (defined == 0) continue;
    if (defined != parts.size())
      throw Error("cannot save '" + t.name + "': the model lacks part of this fused tensor");
    at::Tensor v = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
    out.push_back({t.name, t.transposed ? v.t() : v});
  }
  return out;
}

const char* torch_dtype_name(DType d) {
  return d == DType::BF16 ? "bfloat16" : d == DType::F16 ? "float16" : "float32";
}

}  // namespace

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
  load_weights(src, m, keep_dtype);
  m.finalize();
  if (keep_dtype) convert_weights(m, want);
  return m;
}

void write_hf_checkpoint(const Model& model, const fs::path& dir, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw Error("can only save weights as F32, F16 or BF16");
  if (const WeightFormat f = current_weight_format(model); packed_format(f))
    throw Error(std::string(weight_format_name(f)) +
                " weights are a load-time format and cannot be saved; load the model without "
                "--weights " +
                weight_format_name(f));
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

#include "io/hf_config.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/text_file.h"

using nlohmann::json;

namespace thinkeys {
namespace {

// nlohmann's get<int>() converts any JSON number with a C cast, so 1e90 or
// 2^40 in a config would wrap (or be undefined behaviour). Integer fields must
// hold integers that fit; a float is accepted only when it is integral.
struct OutOfRange {};

template <typename T>
struct Strict {
  static T get(const json& v) { return v.get<T>(); }
};
template <>
struct Strict<int> {
  static int get(const json& v) {
    if (v.is_number_integer()) {
      if (v.is_number_unsigned()) {
        auto u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int>::max())) throw OutOfRange{};
        return static_cast<int>(u);
      }
      auto i = v.get<int64_t>();
      if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max())
        throw OutOfRange{};
      return static_cast<int>(i);
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (!(d >= std::numeric_limits<int>::min() && d <= std::numeric_limits<int>::max()) ||
          d != std::floor(d))
        throw OutOfRange{};
      return static_cast<int>(d);
    }
    throw OutOfRange{};  // strings, booleans (nlohmann would read true as 1), null
  }
};
template <>
struct Strict<double> {
  static double get(const json& v) {
    if (!v.is_number()) throw OutOfRange{};  // not true/false as 1/0
    return v.get<double>();
  }
};
template <typename T>
struct Strict<std::vector<T>> {
  static std::vector<T> get(const json& v) {
    if (!v.is_array()) throw OutOfRange{};
    std::vector<T> out;
    out.reserve(v.size());
    for (const json& e : v) out.push_back(Strict<T>::get(e));
    return out;
  }
};

class Fields {
 public:
  Fields(const json& j, std::string origin, std::vector<std::string>* unsupported = nullptr)
      : j_(j), origin_(std::move(origin)), unsupported_(unsupported) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  template <typename T>
  T get(const char* key) const {
    if (!has(key)) throw Error(origin_ + ": missing field '" + key + "'");
    return as<T>(key);
  }
  template <typename T>
  T get_or(const char* key, T fallback) const {
    return has(key) ? as<T>(key) : fallback;
  }
  [[noreturn]] void fail(const std::string& what) const { throw Error(origin_ + ": " + what); }
  // A setting the runtime does not implement but that leaves every tensor and
  // cache shape as it is: refused, or only recorded when the caller asked
  // for shapes alone.
  void unsupported(const std::string& what) const {
    if (!unsupported_) fail(what);
    unsupported_->push_back(what);
  }
  const json& raw(const char* key) const { return j_.at(key); }

 private:
  template <typename T>
  T as(const char* key) const {
    try {
      return Strict<T>::get(j_.at(key));
    } catch (const json::exception&) {
      throw Error(origin_ + ": field '" + std::string(key) + "' has the wrong type");
    } catch (const OutOfRange&) {
      throw Error(origin_ + ": field '" + std::string(key) +
                  "' has the wrong type or is out of range");
    }
  }
  const json& j_;
  std::string origin_;
  std::vector<std::string>* unsupported_;
};

std::optional<int> optional_token(const Fields& f, const char* key) {
  if (!f.has(key)) return std::nullopt;
  const json& v = f.raw(key);
  const json& id = v.is_array() && !v.empty() ? v.front() : v;
  if (!id.is_number_integer()) return std::nullopt;
  try {
    return Strict<int>::get(id);
  } catch (const OutOfRange&) {
    f.fail(std::string("'") + key + "' is out of range");
  }
}

// No released model has more than a few hundred layers; a count far beyond
// that is a corrupt file, and per-layer tables sized from it would take
// minutes and gigabytes before any other check could refuse it.
constexpr int kMaxLayers = 65536;

int layer_count(const Fields& f, const char* key) {
  const int n = f.get<int>(key);
  if (n > kMaxLayers)
    f.fail(std::string("'") + key + "' = " + std::to_string(n) + " exceeds " +
           std::to_string(kMaxLayers) + " layers");
  return n;
}

// config.json's names for the sizes every family has, GPT-2's and the Llama
// family's (Llama, Mistral, Qwen2): one table for reading and writing.
struct SizeKeys {
  const char* dim;
  const char* layers;
  const char* heads;
  const char* hidden;
  const char* positions;
  const char* norm_eps;
};
constexpr SizeKeys kGpt2Keys{"n_embd",  "n_layer",     "n_head",
                             "n_inner", "n_positions", "layer_norm_epsilon"};
constexpr SizeKeys kLlamaKeys{"hidden_size",       "num_hidden_layers",       "num_attention_heads",
                              "intermediate_size", "max_position_embeddings", "rms_norm_eps"};

// vocab_size, width, layers and heads: read alike in every family.
void read_sizes(const Fields& f, const SizeKeys& k, ModelConfig& c) {
  c.vocab_size = f.get<int>("vocab_size");
  c.dim = f.get<int>(k.dim);
  c.n_layers = layer_count(f, k.layers);
  c.n_heads = f.get<int>(k.heads);
}

void read_gpt2(const Fields& f, ModelConfig& c) {
  const SizeKeys& k = kGpt2Keys;
  read_sizes(f, k, c);
  c.n_kv_heads = c.n_heads;
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
    f.fail("n_embd (" + std::to_string(c.dim) + ") is not divisible by n_head (" +
           std::to_string(c.n_heads) + ")");
  c.head_dim = c.dim / c.n_heads;
  c.hidden_dim = f.get_or<int>(k.hidden, 4 * c.dim);
  c.max_positions = f.get_or<int>(k.positions, f.get_or<int>("n_ctx", 1024));
  c.norm = NormKind::LayerNorm;
  c.norm_eps = f.get_or<double>(k.norm_eps, 1e-5);
  auto act = f.get_or<std::string>("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh" && act != "gelu_fast")
    f.unsupported("activation_function '" + act + "' is not supported (expected gelu_new)");
  c.mlp = MlpKind::GeluTanh;
  c.positions = PositionKind::Learned;
  if (f.get_or<bool>("scale_attn_by_inverse_layer_idx", false))
    f.unsupported("scale_attn_by_inverse_layer_idx=true is not supported");
  if (!f.get_or<bool>("scale_attn_weights", true))
    f.unsupported("scale_attn_weights=false is not supported");
  c.tied_embeddings = f.get_or<bool>("tie_word_embeddings", true);
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
}

void read_llama_family(const Fields& f, ModelConfig& c) {
  const SizeKeys& k = kLlamaKeys;
  read_sizes(f, k, c);
  c.n_kv_heads = f.get_or<int>("num_key_value_heads", c.n_heads);
  if (f.has("head_dim")) {
    c.head_dim = f.get<int>("head_dim");
  } else {
    if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
      f.fail("hidden_size (" + std::to_string(c.dim) +
             ") is not divisible by num_attention_heads (" + std::to_string(c.n_heads) + ")");
    c.head_dim = c.dim / c.n_heads;
  }
  c.hidden_dim = f.get<int>(k.hidden);
  c.max_positions = f.get_or<int>(k.positions, 2048);
  c.norm = NormKind::RMSNorm;
  c.norm_eps = f.get_or<double>(k.norm_eps, 1e-6);
  auto act = f.get_or<std::string>("hidden_act", "silu");
  if (act != "silu") f.unsupported("hidden_act '" + act + "' is not supported (expected silu)");
  c.mlp = MlpKind::SwiGLU;
  c.positions = PositionKind::Rope;
  c.rope_theta = f.get_or<double>("rope_theta", 10000.0);
  if (f.has("rope_scaling")) {
    const json& rs = f.raw("rope_scaling");
    if (!rs.is_object()) f.fail("'rope_scaling' must be an object or null");
    std::string type = rs.value("rope_type", rs.value("type", std::string("unknown")));
    if (type != "default")
      f.unsupported("rope_scaling type '" + type + "' is not supported (only unscaled RoPE)");
  }
  if (f.get_or<double>("partial_rotary_factor", 1.0) != 1.0)
    f.unsupported("partial_rotary_factor != 1 is not supported");
  c.tied_embeddings = f.get_or<bool>("tie_word_embeddings", false);

  if (c.model_type == "qwen2") {
    c.qkv_bias = true;
    if (f.get_or<bool>("use_sliding_window", false))
      f.unsupported("use_sliding_window=true is not supported for qwen2 (per-layer windows)");
  } else {
    bool attention_bias = f.get_or<bool>("attention_bias", false);
    c.qkv_bias = c.o_bias = attention_bias;
    c.mlp_bias = f.get_or<bool>("mlp_bias", false);
    if (c.model_type == "mistral" && f.has("sliding_window"))
      c.sliding_window = f.get<int>("sliding_window");
  }
}

void read_thin_keys(const Fields& f, ModelConfig& c) {
  ThinKeysInfo tk;
  tk.method = f.get_or<std::string>("method", "unknown");
  tk.target = f.get_or<std::string>("target", "keys");
  try {
    tk.rope = parse_rope_mode(f.get_or<std::string>("rope_mode", "full"));
    // Absent in configs written before the choice existed: those mean head_dim.
    c.rope_table = parse_rope_table(f.get_or<std::string>("rope_table", "head_dim"));
  } catch (const Error& e) {
    f.fail(e.what());
  }
  tk.share = f.get_or<int>("share", 1);
  c.key_rank = f.get<std::vector<int>>("key_rank");
  if (f.has("rope_planes"))
    c.rope_planes = f.get<std::vector<std::vector<std::vector<int>>>>("rope_planes");
  c.thin_keys = tk;
}

void read_attention_variant(const Fields& f, ModelConfig& c) {
  const auto kind = f.get<std::string>("kind");
  if (kind == "mla") {
    c.attention.kind = AttentionKind::MLA;
    c.attention.latent = f.get<int>("kv_lora_rank");
    c.attention.rope_dim = f.get<int>("qk_rope_head_dim");
    c.attention.nope_dim = f.get<int>("qk_nope_head_dim");
    if (f.get_or<int>("v_head_dim", c.head_dim) != c.head_dim)
      f.fail("v_head_dim must equal head_dim");
  } else if (kind == "lrkv") {
    c.attention.kind = AttentionKind::LRKV;
    c.attention.rank = f.get<int>("rank");
  } else {
    f.fail("unknown attention kind '" + kind + "' (expected mla or lrkv)");
  }
}

}  // namespace

namespace {
ModelConfig read_config(const json& j, const std::string& origin,
                        std::vector<std::string>* unsupported);
}  // namespace

ModelConfig parse_hf_config(const std::string& json_text, const std::string& origin,
                            std::vector<std::string>* unsupported) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(origin + ": malformed JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw Error(origin + ": expected a JSON object");
  try {
    return read_config(j, origin, unsupported);
  } catch (const json::exception& e) {
    // A value of an unexpected JSON type somewhere the field readers do not guard.
    throw Error(origin + ": unexpected value (" + e.what() + ")");
  }
}

namespace {

ModelConfig read_config(const json& j, const std::string& origin,
                        std::vector<std::string>* unsupported) {
  Fields f(j, origin, unsupported);

  ModelConfig c;
  if (f.has("architectures") && f.raw("architectures").is_array() &&
      !f.raw("architectures").empty() && f.raw("architectures").front().is_string())
    c.architecture = f.raw("architectures").front().get<std::string>();
  c.model_type = f.get_or<std::string>("model_type", "");
  if (c.architecture.empty() && c.model_type.empty())
    f.fail("neither 'architectures' nor 'model_type' is set; cannot tell the architecture");
  // Which fields are read and written follows the family, so the two must
  // agree: Llama with model_type "gpt2" used to load as Llama and be written
  // back with GPT-2's field names.
  const bool gpt2_class = c.architecture == "GPT2LMHeadModel";
  const bool llama_class = c.architecture == "LlamaForCausalLM" ||
                           c.architecture == "MistralForCausalLM" ||
                           c.architecture == "Qwen2ForCausalLM";
  const bool gpt2_type = c.model_type == "gpt2";
  const bool llama_type =
      c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2";
  if (!c.model_type.empty() && ((gpt2_class && !gpt2_type) || (llama_class && !llama_type)))
    f.fail("'architectures' names " + c.architecture + " but 'model_type' is '" + c.model_type +
           "'");

  if (gpt2_class || (c.architecture.empty() && gpt2_type)) {
    c.architecture = "GPT2LMHeadModel";
    c.model_type = "gpt2";
    read_gpt2(f, c);
  } else if (llama_class || (c.architecture.empty() && llama_type)) {
    if (c.model_type.empty()) {
      c.model_type = c.architecture == "MistralForCausalLM" ? "mistral"
                     : c.architecture == "Qwen2ForCausalLM" ? "qwen2"
                                                            : "llama";
    }
    if (c.architecture.empty())
      c.architecture = c.model_type == "mistral" ? "MistralForCausalLM"
                       : c.model_type == "qwen2" ? "Qwen2ForCausalLM"
                                                 : "LlamaForCausalLM";
    read_llama_family(f, c);
  } else {
    f.fail(
        "unknown architecture '" + (c.architecture.empty() ? c.model_type : c.architecture) +
        "' (supported: GPT2LMHeadModel, LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  }

  c.weight_dtype = f.get_or<std::string>("torch_dtype", "float32");
  if (f.has("query_pre_attn_scalar"))
    c.query_pre_attn_scalar = f.get<double>("query_pre_attn_scalar");
  c.bos_id = optional_token(f, "bos_token_id");
  c.eos_id = optional_token(f, "eos_token_id");

  if (f.has("thin_keys")) read_thin_keys(Fields(f.raw("thin_keys"), origin + ": thin_keys"), c);
  if (f.has("attention_variant")) {
    if (!f.raw("attention_variant").is_object()) f.fail("'attention_variant' must be an object");
    read_attention_variant(Fields(f.raw("attention_variant"), origin + ": attention_variant"), c);
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(origin + ": " + e.what());
  }
  return c;
}

}  // namespace

ModelConfig read_hf_config(const std::filesystem::path& config_json,
                           std::vector<std::string>* unsupported) {
  if (!std::filesystem::exists(config_json))
    throw Error("missing " + config_json.string() +
                " (a Hugging Face model directory needs config.json)");
  return parse_hf_config(read_file_bytes(config_json), config_json.string(), unsupported);
}

std::string hf_config_json(const ModelConfig& c) {
  json j;
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["torch_dtype"] = c.weight_dtype;
  if (c.bos_id) j["bos_token_id"] = *c.bos_id;
  if (c.eos_id) j["eos_token_id"] = *c.eos_id;
  j["tie_word_embeddings"] = c.tied_embeddings;
  const bool gpt2 = c.model_type == "gpt2";
  const SizeKeys& k = gpt2 ? kGpt2Keys : kLlamaKeys;
  j[k.dim] = c.dim;
  j[k.layers] = c.n_layers;
  j[k.heads] = c.n_heads;
  j[k.hidden] = c.hidden_dim;
  j[k.positions] = c.max_positions;
  j[k.norm_eps] = c.norm_eps;
  if (gpt2) {
    j["n_ctx"] = c.max_positions;
    j["activation_function"] = "gelu_new";
  } else {
    j["num_key_value_heads"] = c.n_kv_heads;
    j["head_dim"] = c.head_dim;
    j["hidden_act"] = "silu";
    j["rope_theta"] = c.rope_theta;
    if (c.model_type == "qwen2") {
      j["use_sliding_window"] = false;
    } else {
      j["attention_bias"] = c.qkv_bias;
      j["mlp_bias"] = c.mlp_bias;
    }
    if (c.model_type == "mistral")
      j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
  }
  if (c.thin_keys) {
    json tk = {{"method", c.thin_keys->method},
               {"target", c.thin_keys->target},
               {"rope_mode", to_string(c.thin_keys->rope)},
               {"share", c.thin_keys->share},
               {"key_rank", c.key_rank}};
    if (!c.rope_planes.empty()) tk["rope_planes"] = c.rope_planes;
    if (c.rope_table != RopeTable::HeadDim) tk["rope_table"] = to_string(c.rope_table);
    j["thin_keys"] = tk;
  } else if (!c.key_rank.empty()) {
    j["thin_keys"] = {{"method", "trained"}, {"rope_mode", "full"}, {"key_rank", c.key_rank}};
    if (c.rope_table != RopeTable::HeadDim) j["thin_keys"]["rope_table"] = to_string(c.rope_table);
  }
  if (c.query_pre_attn_scalar) j["query_pre_attn_scalar"] = *c.query_pre_attn_scalar;
  if (c.is_mla())
    j["attention_variant"] = {{"kind", "mla"},
                              {"kv_lora_rank", c.attention.latent},
                              {"qk_rope_head_dim", c.attention.rope_dim},
                              {"qk_nope_head_dim", c.attention.nope_dim},
                              {"v_head_dim", c.head_dim}};
  else if (c.is_lrkv())
    j["attention_variant"] = {{"kind", "lrkv"}, {"rank", c.attention.rank}};
  return j.dump(2) + "\n";
}

}  // namespace thinkeys

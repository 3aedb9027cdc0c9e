// The Hugging Face loader and the forward pass against a second, deliberately
// plain implementation: random-weight GPT-2, Llama and Qwen2 checkpoints are
// written here in HF layout, and every logit the runtime produces is compared
// with loops over doubles that decode the HF names, layouts and config fields
// on their own. Random weights leave no room for a transposed matrix, a wrong
// RoPE pairing, a wrong GQA grouping or a config field that is read but not
// used: any of those moves the logits by far more than the tolerance (the
// sensitivity tests at the end prove that for the reference itself).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/model_loader.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "test_support.h"

namespace thinkeys {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The runtime computes in f32 and the reference in double; on these shapes
// the honest difference is around 1e-6, so 1e-4 only fails for real mistakes.
constexpr double kTolerance = 1e-4;
// Saving as F32 and reloading must reproduce the very same weights.
constexpr double kRoundTripTolerance = 1e-6;

// ---------------------------------------------------------------------------
// Checkpoint contents, in Hugging Face names and layouts.

struct HfTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major; already rounded when the file stores BF16
};
using TensorMap = std::map<std::string, HfTensor>;

uint16_t bf16_bits(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest, ties to even; no NaNs occur here
  return static_cast<uint16_t>(u >> 16);
}

float round_to_bf16(float f) { return std::bit_cast<float>(uint32_t{bf16_bits(f)} << 16); }

void append_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

uint64_t read_le(const std::string& in, size_t pos, int bytes) {
  if (pos + bytes > in.size()) throw std::runtime_error("safetensors: truncated");
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(in[pos + i])} << (8 * i);
  return v;
}

// safetensors: u64 little-endian header length, JSON header, raw little-endian data.
// Returns the number of data bytes (for the shard index's total_size).
size_t write_safetensors_file(const fs::path& path,
                              const std::vector<std::pair<std::string, const HfTensor*>>& tensors,
                              bool bf16) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& [name, t] : tensors) {
    const size_t begin = data.size();
    for (float f : t->data) {
      if (bf16)
        append_le(data, bf16_bits(f), 2);
      else
        append_le(data, std::bit_cast<uint32_t>(f), 4);
    }
    header[name] = {{"dtype", bf16 ? "BF16" : "F32"},
                    {"shape", t->shape},
                    {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  // Trailing spaces keep the data 8-byte aligned, as Hugging Face's writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file;
  append_le(file, text.size(), 8);
  file += text;
  file += data;
  std::ofstream out(path, std::ios::binary);
  out.write(file.data(), static_cast<std::streamsize>(file.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
  return data.size();
}

// Reads back what the runtime saved, to check names, shapes and values in the
// files themselves rather than only through the runtime's own loader.
TensorMap read_f32_safetensors(const fs::path& path) {
  std::string bytes = test::read_bytes(path);
  const uint64_t n = read_le(bytes, 0, 8);
  if (8 + n > bytes.size()) throw std::runtime_error("safetensors: header past the end");
  json header = json::parse(bytes.substr(8, n));
  const size_t base = 8 + n;
  TensorMap out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    if (info.at("dtype") != "F32") throw std::runtime_error(name + ": expected F32");
    HfTensor t;
    t.shape = info.at("shape").get<std::vector<int64_t>>();
    const auto offsets = info.at("data_offsets").get<std::vector<size_t>>();
    int64_t numel = 1;
    for (int64_t s : t.shape) numel *= s;
    if (offsets.size() != 2 || offsets[1] - offsets[0] != static_cast<size_t>(numel) * 4)
      throw std::runtime_error(name + ": data_offsets do not match the shape");
    for (int64_t i = 0; i < numel; ++i)
      t.data.push_back(std::bit_cast<float>(
          static_cast<uint32_t>(read_le(bytes, base + offsets[0] + 4 * i, 4))));
    out[name] = std::move(t);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Test models.

enum class Arch { kGpt2, kLlama, kQwen2 };

struct Spec {
  std::string name;
  Arch arch = Arch::kLlama;
  int vocab = 61;
  int dim = 32;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int head_dim_field = 0;  // written to config.json when non-zero
  int inner = 48;
  int positions = 64;  // n_positions / max_position_embeddings
  // Differs from the HF defaults (1e-5 for GPT-2, 1e-6 for Llama) and is large
  // enough to matter, so ignoring the field would be caught.
  double eps = 1e-4;
  double rope_theta = 10000;
  bool tied = false;
  bool bf16 = false;
  bool sharded = false;
  uint32_t seed = 1;

  int head_dim() const { return head_dim_field ? head_dim_field : dim / heads; }
};

Spec make_spec(std::string name, Arch arch, uint32_t seed) {
  Spec s;
  s.name = std::move(name);
  s.arch = arch;
  s.seed = seed;
  return s;
}

const std::vector<Spec>& specs() {
  static const std::vector<Spec> all = [] {
    Spec gpt2 = make_spec("Gpt2", Arch::kGpt2, 11);
    gpt2.kv_heads = 4;
    gpt2.inner = 64;  // n_inner, not the 4 * n_embd default
    gpt2.positions = 40;
    gpt2.eps = 1e-3;
    gpt2.tied = true;

    Spec llama = make_spec("LlamaGqaUntied", Arch::kLlama, 22);
    llama.vocab = 67;
    llama.rope_theta = 500000;

    Spec qwen = make_spec("Qwen2BiasTied", Arch::kQwen2, 33);
    qwen.vocab = 53;
    qwen.inner = 40;
    qwen.rope_theta = 1000000;
    qwen.tied = true;

    Spec sharded = make_spec("LlamaShardedMqa", Arch::kLlama, 44);
    sharded.vocab = 59;
    sharded.layers = 3;
    sharded.kv_heads = 1;
    sharded.sharded = true;

    Spec bf16 = make_spec("Qwen2Bf16", Arch::kQwen2, 55);
    bf16.vocab = 57;
    bf16.inner = 40;
    bf16.rope_theta = 1000000;
    bf16.bf16 = true;

    // head_dim 16 with hidden_size 32 and 4 heads: projections are wider than D.
    Spec wide = make_spec("LlamaExplicitHeadDim", Arch::kLlama, 66);
    wide.head_dim_field = 16;
    wide.rope_theta = 500000;

    return std::vector<Spec>{gpt2, llama, qwen, sharded, bf16, wide};
  }();
  return all;
}

const Spec& spec_named(const std::string& name) {
  for (const Spec& s : specs())
    if (s.name == name) return s;
  throw std::logic_error("no spec " + name);
}

// Fits every vocabulary above; repeats a token so positions must matter.
const std::vector<int32_t> kTokens = {3, 17, 0, 42, 5, 5, 29, 11, 50, 1, 33, 8};

TensorMap make_weights(const Spec& s) {
  std::mt19937 rng(s.seed);
  TensorMap m;
  // Std 0.2 makes attention scores of order one: clearly non-uniform softmax.
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float mean, float stddev) {
    HfTensor t;
    t.shape = std::move(shape);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::normal_distribution<float> dist(mean, stddev);
    t.data.resize(n);
    for (float& v : t.data) v = s.bf16 ? round_to_bf16(dist(rng)) : dist(rng);
    m[name] = std::move(t);
  };
  auto weight = [&](const std::string& n, std::vector<int64_t> shape) { add(n, shape, 0, 0.2f); };
  auto bias = [&](const std::string& n, int64_t size) { add(n, {size}, 0, 0.1f); };
  auto gain = [&](const std::string& n, int64_t size) { add(n, {size}, 1, 0.1f); };

  const int64_t V = s.vocab, D = s.dim, F = s.inner;
  if (s.arch == Arch::kGpt2) {
    weight("transformer.wte.weight", {V, D});
    weight("transformer.wpe.weight", {s.positions, D});
    for (int l = 0; l < s.layers; ++l) {
      const std::string p = "transformer.h." + std::to_string(l) + ".";
      gain(p + "ln_1.weight", D);
      bias(p + "ln_1.bias", D);
      weight(p + "attn.c_attn.weight", {D, 3 * D});  // Conv1D: [in, out]
      bias(p + "attn.c_attn.bias", 3 * D);
      weight(p + "attn.c_proj.weight", {D, D});
      bias(p + "attn.c_proj.bias", D);
      gain(p + "ln_2.weight", D);
      bias(p + "ln_2.bias", D);
      weight(p + "mlp.c_fc.weight", {D, F});
      bias(p + "mlp.c_fc.bias", F);
      weight(p + "mlp.c_proj.weight", {F, D});
      bias(p + "mlp.c_proj.bias", D);
    }
    gain("transformer.ln_f.weight", D);
    bias("transformer.ln_f.bias", D);
  } else {
    const int64_t H = s.heads, Hkv = s.kv_heads, d = s.head_dim();
    weight("model.embed_tokens.weight", {V, D});
    for (int l = 0; l < s.layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      gain(p + "input_layernorm.weight", D);
      weight(p + "self_attn.q_proj.weight", {H * d, D});  // nn.Linear: [out, in]
      weight(p + "self_attn.k_proj.weight", {Hkv * d, D});
      weight(p + "self_attn.v_proj.weight", {Hkv * d, D});
      weight(p + "self_attn.o_proj.weight", {D, H * d});
      if (s.arch == Arch::kQwen2) {
        bias(p + "self_attn.q_proj.bias", H * d);
        bias(p + "self_attn.k_proj.bias", Hkv * d);
        bias(p + "self_attn.v_proj.bias", Hkv * d);
      }
      gain(p + "post_attention_layernorm.weight", D);
      weight(p + "mlp.gate_proj.weight", {F, D});
      weight(p + "mlp.up_proj.weight", {F, D});
      weight(p + "mlp.down_proj.weight", {D, F});
    }
    gain("model.norm.weight", D);
    if (!s.tied) weight("lm_head.weight", {V, D});
  }
  return m;
}

json make_config(const Spec& s) {
  const char* dtype = s.bf16 ? "bfloat16" : "float32";
  if (s.arch == Arch::kGpt2) {
    return {{"architectures", {"GPT2LMHeadModel"}},
            {"model_type", "gpt2"},
            {"vocab_size", s.vocab},
            {"n_embd", s.dim},
            {"n_layer", s.layers},
            {"n_head", s.heads},
            {"n_positions", s.positions},
            {"n_ctx", s.positions},
            {"n_inner", s.inner},
            {"layer_norm_epsilon", s.eps},
            {"activation_function", "gelu_new"},
            {"attn_pdrop", 0.1},
            {"resid_pdrop", 0.1},
            {"embd_pdrop", 0.1},
            {"scale_attn_weights", true},
            {"bos_token_id", 0},
            {"eos_token_id", 0},
            {"torch_dtype", dtype}};
  }
  json j = {{"architectures", {s.arch == Arch::kQwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
            {"model_type", s.arch == Arch::kQwen2 ? "qwen2" : "llama"},
            {"vocab_size", s.vocab},
            {"hidden_size", s.dim},
            {"intermediate_size", s.inner},
            {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads},
            {"num_key_value_heads", s.kv_heads},
            {"rms_norm_eps", s.eps},
            {"rope_theta", s.rope_theta},
            {"rope_scaling", nullptr},
            {"max_position_embeddings", s.positions},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", s.tied},
            {"bos_token_id", 1},
            {"eos_token_id", 2},
            {"torch_dtype", dtype}};
  if (s.head_dim_field) j["head_dim"] = s.head_dim_field;
  if (s.arch == Arch::kQwen2) {
    // Real Qwen2 configs carry a window that is off; Hugging Face then attends
    // to everything. A small value makes honouring it by mistake visible.
    j["use_sliding_window"] = false;
    j["sliding_window"] = 4;
    j["max_window_layers"] = s.layers;
  } else {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
  }
  return j;
}

void write_checkpoint(const Spec& s, const TensorMap& weights, const fs::path& dir) {
  test::write_bytes(dir / "config.json", make_config(s).dump(2));
  std::vector<std::pair<std::string, const HfTensor*>> all;
  for (const auto& [name, t] : weights) all.emplace_back(name, &t);
  if (!s.sharded) {
    write_safetensors_file(dir / "model.safetensors", all, s.bf16);
    return;
  }
  // Alternate tensors between the shards so every layer is split across files.
  const std::string shard_names[2] = {"model-00001-of-00002.safetensors",
                                      "model-00002-of-00002.safetensors"};
  std::vector<std::pair<std::string, const HfTensor*>> shards[2];
  json weight_map = json::object();
  for (size_t i = 0; i < all.size(); ++i) {
    shards[i % 2].push_back(all[i]);
    weight_map[all[i].first] = shard_names[i % 2];
  }
  size_t total = 0;
  for (int k = 0; k < 2; ++k)
    total += write_safetensors_file(dir / shard_names[k], shards[k], s.bf16);
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  test::write_bytes(dir / "model.safetensors.index.json", index.dump(2));
}

// ---------------------------------------------------------------------------
// The plain reference: one position at a time, doubles throughout.

using Vec = std::vector<double>;
using Matrix = std::vector<Vec>;  // [T][n]

// Deliberate departures from the HF conventions, used only to show that the
// comparison notices each of them.
struct Variant {
  bool rope_adjacent_pairs = false;   // GPT-J pairing (2i, 2i+1) instead of rotate-half
  bool gqa_interleaved = false;       // query head h reads KV head h % Hkv
  bool gpt2_proj_as_linear = false;   // read the square attn.c_proj as [out, in]
  std::optional<double> rope_theta;   // override config
  std::optional<double> eps;          // override config
  std::optional<int> sliding_window;  // attend to the last W positions only
};

const HfTensor& tensor(const TensorMap& w, const std::string& name) {
  auto it = w.find(name);
  if (it == w.end()) throw std::runtime_error("reference: no tensor " + name);
  return it->second;
}

const HfTensor* optional_tensor(const TensorMap& w, const std::string& name) {
  auto it = w.find(name);
  return it == w.end() ? nullptr : &it->second;
}

void add_bias(Vec& y, const HfTensor* b) {
  if (!b) return;
  if (b->data.size() != y.size()) throw std::runtime_error("reference: bias size mismatch");
  for (size_t o = 0; o < y.size(); ++o) y[o] += b->data[o];
}

// nn.Linear keeps [out, in].
Vec linear(const HfTensor& w, const Vec& x, const HfTensor* b = nullptr) {
  if (w.shape.size() != 2 || w.shape[1] != static_cast<int64_t>(x.size()))
    throw std::runtime_error("reference: Linear shape mismatch");
  const size_t out = w.shape[0], in = w.shape[1];
  Vec y(out, 0.0);
  for (size_t o = 0; o < out; ++o)
    for (size_t i = 0; i < in; ++i) y[o] += double{w.data[o * in + i]} * x[i];
  add_bias(y, b);
  return y;
}

// GPT-2's Conv1D keeps [in, out]: y = x W + b.
Vec conv1d(const HfTensor& w, const Vec& x, const HfTensor* b) {
  if (w.shape.size() != 2 || w.shape[0] != static_cast<int64_t>(x.size()))
    throw std::runtime_error("reference: Conv1D shape mismatch");
  const size_t in = w.shape[0], out = w.shape[1];
  Vec y(out, 0.0);
  for (size_t i = 0; i < in; ++i)
    for (size_t o = 0; o < out; ++o) y[o] += x[i] * double{w.data[i * out + o]};
  add_bias(y, b);
  return y;
}

Vec layer_norm(const Vec& x, const HfTensor& g, const HfTensor& b, double eps) {
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= x.size();
  for (double v : x) var += (v - mean) * (v - mean);
  var /= x.size();  // biased, as torch.nn.LayerNorm
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = (x[i] - mean) / std::sqrt(var + eps) * g.data[i] + b.data[i];
  return y;
}

Vec rms_norm(const Vec& x, const HfTensor& g, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= x.size();
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * g.data[i];
  return y;
}

double gelu_tanh(double x) {
  const double c = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

// Rotates each of `heads` vectors of width d in place for position `pos`.
void rope(Vec& x, int heads, int d, int pos, double theta, bool adjacent) {
  const int half = d / 2;
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < half; ++i) {
      const double angle = pos * std::pow(theta, -2.0 * i / d);
      const size_t a = h * d + (adjacent ? 2 * i : i);
      const size_t b = h * d + (adjacent ? 2 * i + 1 : i + half);
      const double xa = x[a], xb = x[b];
      x[a] = xa * std::cos(angle) - xb * std::sin(angle);
      x[b] = xb * std::cos(angle) + xa * std::sin(angle);
    }
  }
}

// Causal softmax attention; q rows hold H heads of width d, k and v rows Hkv.
Matrix attention(const Matrix& q, const Matrix& k, const Matrix& v, int H, int Hkv, int d,
                 const Variant& var) {
  const int T = static_cast<int>(q.size());
  Matrix out(T, Vec(static_cast<size_t>(H) * d, 0.0));
  for (int t = 0; t < T; ++t) {
    const int first = var.sliding_window ? std::max(0, t - *var.sliding_window + 1) : 0;
    for (int h = 0; h < H; ++h) {
      const int kvh = var.gqa_interleaved ? h % Hkv : h / (H / Hkv);
      Vec scores;
      for (int s = first; s <= t; ++s) {
        double dot = 0;
        for (int j = 0; j < d; ++j) dot += q[t][h * d + j] * k[s][kvh * d + j];
        scores.push_back(dot / std::sqrt(static_cast<double>(d)));
      }
      const double top = *std::max_element(scores.begin(), scores.end());
      double sum = 0;
      for (double& sc : scores) sum += (sc = std::exp(sc - top));
      for (int s = first; s <= t; ++s) {
        const double p = scores[s - first] / sum;
        for (int j = 0; j < d; ++j) out[t][h * d + j] += p * v[s][kvh * d + j];
      }
    }
  }
  return out;
}

Matrix logits_from(const Matrix& hidden, const HfTensor& head) {
  Matrix out;
  for (const Vec& h : hidden) out.push_back(linear(head, h));
  return out;
}

Matrix reference_gpt2(const Spec& s, const TensorMap& w, const std::vector<int32_t>& tokens,
                      const Variant& var) {
  const int T = static_cast<int>(tokens.size()), D = s.dim, H = s.heads, d = D / H;
  const double eps = var.eps.value_or(s.eps);
  const HfTensor& wte = tensor(w, "transformer.wte.weight");
  const HfTensor& wpe = tensor(w, "transformer.wpe.weight");
  Matrix x(T, Vec(D));
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < D; ++j)
      x[t][j] = double{wte.data[tokens[t] * D + j]} + double{wpe.data[t * D + j]};

  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    auto get = [&](const std::string& n) -> const HfTensor& { return tensor(w, p + n); };
    Matrix q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      Vec h = layer_norm(x[t], get("ln_1.weight"), get("ln_1.bias"), eps);
      Vec qkv = conv1d(get("attn.c_attn.weight"), h, &get("attn.c_attn.bias"));
      q[t].assign(qkv.begin(), qkv.begin() + D);
      k[t].assign(qkv.begin() + D, qkv.begin() + 2 * D);
      v[t].assign(qkv.begin() + 2 * D, qkv.end());
    }
    Matrix a = attention(q, k, v, H, H, d, var);
    for (int t = 0; t < T; ++t) {
      Vec o = var.gpt2_proj_as_linear
                  ? linear(get("attn.c_proj.weight"), a[t], &get("attn.c_proj.bias"))
                  : conv1d(get("attn.c_proj.weight"), a[t], &get("attn.c_proj.bias"));
      for (int j = 0; j < D; ++j) x[t][j] += o[j];
      Vec h = layer_norm(x[t], get("ln_2.weight"), get("ln_2.bias"), eps);
      Vec f = conv1d(get("mlp.c_fc.weight"), h, &get("mlp.c_fc.bias"));
      for (double& z : f) z = gelu_tanh(z);
      Vec m = conv1d(get("mlp.c_proj.weight"), f, &get("mlp.c_proj.bias"));
      for (int j = 0; j < D; ++j) x[t][j] += m[j];
    }
  }
  for (Vec& row : x)
    row = layer_norm(row, tensor(w, "transformer.ln_f.weight"), tensor(w, "transformer.ln_f.bias"),
                     eps);
  return logits_from(x, wte);  // GPT-2 ties the head to the token embedding
}

Matrix reference_llama(const Spec& s, const TensorMap& w, const std::vector<int32_t>& tokens,
                       const Variant& var) {
  const int T = static_cast<int>(tokens.size()), D = s.dim, H = s.heads, Hkv = s.kv_heads;
  const int d = s.head_dim();
  const double eps = var.eps.value_or(s.eps), theta = var.rope_theta.value_or(s.rope_theta);
  const HfTensor& emb = tensor(w, "model.embed_tokens.weight");
  Matrix x(T, Vec(D));
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < D; ++j) x[t][j] = emb.data[tokens[t] * D + j];

  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto get = [&](const std::string& n) -> const HfTensor& { return tensor(w, p + n); };
    // Qwen2 has q/k/v biases; whatever is present in the file is applied.
    auto maybe = [&](const std::string& n) { return optional_tensor(w, p + n); };
    Matrix q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      Vec h = rms_norm(x[t], get("input_layernorm.weight"), eps);
      q[t] = linear(get("self_attn.q_proj.weight"), h, maybe("self_attn.q_proj.bias"));
      k[t] = linear(get("self_attn.k_proj.weight"), h, maybe("self_attn.k_proj.bias"));
      v[t] = linear(get("self_attn.v_proj.weight"), h, maybe("self_attn.v_proj.bias"));
      rope(q[t], H, d, t, theta, var.rope_adjacent_pairs);
      rope(k[t], Hkv, d, t, theta, var.rope_adjacent_pairs);
    }
    Matrix a = attention(q, k, v, H, Hkv, d, var);
    for (int t = 0; t < T; ++t) {
      Vec o = linear(get("self_attn.o_proj.weight"), a[t], maybe("self_attn.o_proj.bias"));
      for (int j = 0; j < D; ++j) x[t][j] += o[j];
      Vec h = rms_norm(x[t], get("post_attention_layernorm.weight"), eps);
      Vec g = linear(get("mlp.gate_proj.weight"), h);
      Vec u = linear(get("mlp.up_proj.weight"), h);
      for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
      Vec m = linear(get("mlp.down_proj.weight"), g);
      for (int j = 0; j < D; ++j) x[t][j] += m[j];
    }
  }
  for (Vec& row : x) row = rms_norm(row, tensor(w, "model.norm.weight"), eps);
  return logits_from(x, s.tied ? emb : tensor(w, "lm_head.weight"));
}

Matrix reference_logits(const Spec& s, const TensorMap& w, const std::vector<int32_t>& tokens,
                        const Variant& var = {}) {
  return s.arch == Arch::kGpt2 ? reference_gpt2(s, w, tokens, var)
                               : reference_llama(s, w, tokens, var);
}

// ---------------------------------------------------------------------------
// Running the runtime and comparing.

Matrix to_matrix(const at::Tensor& logits) {
  at::Tensor t = logits.to(at::kFloat).contiguous();
  if (t.dim() != 2) throw std::runtime_error("logits are not two-dimensional");
  Matrix out(t.size(0), Vec(t.size(1)));
  const float* p = t.data_ptr<float>();
  for (int64_t r = 0; r < t.size(0); ++r)
    for (int64_t c = 0; c < t.size(1); ++c) out[r][c] = p[r * t.size(1) + c];
  return out;
}

Matrix run_prefill(const Model& model, const std::vector<int32_t>& tokens) {
  KVCache cache(model.config, static_cast<int>(tokens.size()));
  return to_matrix(forward(model, tokens, cache));
}

Matrix run_decode(const Model& model, const std::vector<int32_t>& tokens) {
  KVCache cache(model.config, static_cast<int>(tokens.size()));
  Matrix out;
  for (size_t t = 0; t < tokens.size(); ++t) {
    Matrix row = to_matrix(forward(model, std::span<const int32_t>(&tokens[t], 1), cache));
    if (row.size() != 1) throw std::runtime_error("decode step returned several rows");
    out.push_back(std::move(row[0]));
  }
  return out;
}

// max |got - want| / max |want|; infinite when the shapes differ.
double max_relative_error(const Matrix& got, const Matrix& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (size_t r = 0; r < want.size(); ++r) {
    if (got[r].size() != want[r].size()) return std::numeric_limits<double>::infinity();
    for (size_t c = 0; c < want[r].size(); ++c) {
      diff = std::max(diff, std::abs(got[r][c] - want[r][c]));
      scale = std::max(scale, std::abs(want[r][c]));
    }
  }
  return diff / scale;
}

void report(const std::string& what, double err) {
  std::cout << "[ measured ] " << what << ": max relative error " << err << "\n";
}

class HfReference : public ::testing::TestWithParam<Spec> {
 protected:
  void SetUp() override {
    weights_ = make_weights(GetParam());
    write_checkpoint(GetParam(), weights_, dir_.path());
  }

  test::TempDir dir_;
  TensorMap weights_;
};

TEST_P(HfReference, ConfigFieldsAreHonoured) {
  const Spec& s = GetParam();
  Model model = load_model(dir_.path());
  const ModelConfig& c = model.config;
  EXPECT_EQ(c.vocab_size, s.vocab);
  EXPECT_EQ(c.dim, s.dim);
  EXPECT_EQ(c.n_layers, s.layers);
  EXPECT_EQ(c.n_heads, s.heads);
  EXPECT_EQ(c.n_kv_heads, s.kv_heads);
  EXPECT_EQ(c.head_dim, s.head_dim());
  EXPECT_EQ(c.hidden_dim, s.inner);
  EXPECT_EQ(c.max_positions, s.positions);
  EXPECT_DOUBLE_EQ(c.norm_eps, s.eps);
  EXPECT_EQ(c.tied_embeddings, s.tied);
  EXPECT_FALSE(c.sliding_window.has_value()) << "use_sliding_window=false must disable the window";
  if (s.arch != Arch::kGpt2) {
    EXPECT_DOUBLE_EQ(c.rope_theta, s.rope_theta);
  }
}

TEST_P(HfReference, PrefillMatchesPlainReference) {
  const Spec& s = GetParam();
  Model model = load_model(dir_.path());
  const Matrix want = reference_logits(s, weights_, kTokens);
  const Matrix got = run_prefill(model, kTokens);
  ASSERT_EQ(got.size(), kTokens.size());
  ASSERT_EQ(got[0].size(), static_cast<size_t>(s.vocab));
  const double err = max_relative_error(got, want);
  report(s.name + " prefill vs reference", err);
  EXPECT_LE(err, kTolerance);
}

TEST_P(HfReference, TokenByTokenDecodeMatchesPrefill) {
  const Spec& s = GetParam();
  Model model = load_model(dir_.path());
  const Matrix prefill = run_prefill(model, kTokens);
  const Matrix decode = run_decode(model, kTokens);
  const double err = max_relative_error(decode, prefill);
  report(s.name + " decode vs prefill", err);
  EXPECT_LE(err, kTolerance);
  // Also against the reference, so a bug shared by both paths cannot hide.
  EXPECT_LE(max_relative_error(decode, reference_logits(s, weights_, kTokens)), kTolerance);
}

// A prompt fed in two chunks, into a cache with spare room: the causal mask
// must be offset by what is already cached, and unused cache rows ignored.
TEST_P(HfReference, ChunkedPrefillMatchesReference) {
  const Spec& s = GetParam();
  Model model = load_model(dir_.path());
  KVCache cache(model.config, static_cast<int>(kTokens.size()) + 7);
  const std::span<const int32_t> all(kTokens);
  Matrix got = to_matrix(forward(model, all.first(5), cache));
  const Matrix rest = to_matrix(forward(model, all.subspan(5), cache));
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(cache.length(), static_cast<int>(kTokens.size()));
  const double err = max_relative_error(got, reference_logits(s, weights_, kTokens));
  report(s.name + " two-chunk prefill vs reference", err);
  EXPECT_LE(err, kTolerance);
}

TEST_P(HfReference, LastLogitsAreTheLastRow) {
  Model model = load_model(dir_.path());
  KVCache cache(model.config, static_cast<int>(kTokens.size()));
  const Matrix last = to_matrix(forward(model, kTokens, cache, Logits::Last));
  ASSERT_EQ(last.size(), 1u);
  const Matrix want = reference_logits(GetParam(), weights_, kTokens);
  EXPECT_LE(max_relative_error(last, {want.back()}), kTolerance);
}

TEST_P(HfReference, SaveAsF32AndReloadIsExact) {
  const Spec& s = GetParam();
  Model model = load_model(dir_.path());
  const Matrix before = run_prefill(model, kTokens);

  test::TempDir out;
  const fs::path saved = out.path() / "saved";
  save_model(model, saved, DType::F32, {});
  Model reloaded = load_model(saved);
  const double err = max_relative_error(run_prefill(reloaded, kTokens), before);
  report(s.name + " reload vs original", err);
  EXPECT_LE(err, kRoundTripTolerance);

  // The saved file must be a proper HF checkpoint in its own right: the same
  // tensor names, HF layouts (Conv1D stays [in, out]) and values as written.
  ASSERT_TRUE(fs::exists(saved / "model.safetensors"));
  const TensorMap files = read_f32_safetensors(saved / "model.safetensors");
  std::vector<std::string> written, expected;
  for (const auto& [name, t] : files) written.push_back(name);
  for (const auto& [name, t] : weights_) expected.push_back(name);
  EXPECT_EQ(written, expected);
  for (const auto& [name, t] : weights_) {
    auto it = files.find(name);
    if (it == files.end()) continue;
    EXPECT_EQ(it->second.shape, t.shape) << name;
    EXPECT_TRUE(it->second.data == t.data) << name << ": values changed on save";
  }
  const json config = json::parse(test::read_bytes(saved / "config.json"));
  EXPECT_EQ(config.at("torch_dtype"), "float32");
  EXPECT_EQ(config.at("architectures").at(0), make_config(s).at("architectures").at(0));
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, HfReference, ::testing::ValuesIn(specs()),
                         [](const ::testing::TestParamInfo<Spec>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------
// The reference must be able to fail: each deliberate mistake below has to
// move it well past the tolerance away from the runtime, which it otherwise
// matches.

struct Mistake {
  std::string what;
  Variant variant;
  std::string perturbed_tensor;  // when set, one element of this tensor is shifted by 0.1
  size_t perturbed_index = 0;
};

Mistake shifted(std::string what, std::string tensor_name, size_t index) {
  Mistake m;
  m.what = std::move(what);
  m.perturbed_tensor = std::move(tensor_name);
  m.perturbed_index = index;
  return m;
}

template <typename Edit>
Mistake misread(std::string what, Edit edit) {
  Mistake m;
  m.what = std::move(what);
  edit(m.variant);
  return m;
}

void expect_every_mistake_detected(const Spec& s, const std::vector<Mistake>& mistakes) {
  test::TempDir dir;
  const TensorMap weights = make_weights(s);
  write_checkpoint(s, weights, dir.path());
  const Matrix got = run_prefill(load_model(dir.path()), kTokens);
  ASSERT_LE(max_relative_error(got, reference_logits(s, weights, kTokens)), kTolerance);
  for (const Mistake& m : mistakes) {
    TensorMap altered = weights;
    if (!m.perturbed_tensor.empty())
      altered.at(m.perturbed_tensor).data.at(m.perturbed_index) += 0.1f;
    const double err = max_relative_error(got, reference_logits(s, altered, kTokens, m.variant));
    report(s.name + " with " + m.what, err);
    EXPECT_GT(err, 10 * kTolerance) << s.name << ": the comparison does not notice " << m.what;
  }
}

TEST(HfReferenceSensitivity, Gpt2) {
  // Row 5, key column 7 of the [32, 96] Conv1D weight.
  expect_every_mistake_detected(
      spec_named("Gpt2"),
      {shifted("one key weight of layer 1 shifted", "transformer.h.1.attn.c_attn.weight",
               5 * 96 + 32 + 7),
       misread("attn.c_proj read as [out, in]", [](Variant& v) { v.gpt2_proj_as_linear = true; }),
       misread("the default layer_norm_epsilon", [](Variant& v) { v.eps = 1e-5; }),
       misread("a sliding window of 4", [](Variant& v) { v.sliding_window = 4; })});
}

TEST(HfReferenceSensitivity, Llama) {
  expect_every_mistake_detected(
      spec_named("LlamaGqaUntied"),
      {shifted("one k_proj weight of layer 0 shifted", "model.layers.0.self_attn.k_proj.weight",
               9 * 32 + 4),
       shifted("one lm_head weight shifted", "lm_head.weight", 17 * 32 + 3),
       misread("adjacent-pair RoPE", [](Variant& v) { v.rope_adjacent_pairs = true; }),
       misread("the default rope_theta 10000", [](Variant& v) { v.rope_theta = 10000.0; }),
       misread("interleaved GQA grouping", [](Variant& v) { v.gqa_interleaved = true; }),
       misread("the default rms_norm_eps", [](Variant& v) { v.eps = 1e-6; })});
}

TEST(HfReferenceSensitivity, Qwen2) {
  expect_every_mistake_detected(
      spec_named("Qwen2BiasTied"),
      {shifted("one q_proj bias of layer 1 shifted", "model.layers.1.self_attn.q_proj.bias", 3),
       misread("the disabled sliding window of 4", [](Variant& v) { v.sliding_window = 4; })});
}

}  // namespace
}  // namespace thinkeys

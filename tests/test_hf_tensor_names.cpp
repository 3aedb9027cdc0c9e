// Saving and loading share one table of Hugging Face tensor names
// (checkpoint/hf_tensor_names.h). These tests hold the names and shapes a
// checkpoint of each family must have, written out by hand from the
// transformers modelling code (GPT2Model, LlamaModel, MistralModel,
// Qwen2Model), and round-trip load -> save -> load.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/hf_checkpoint.h"
#include "io/safetensors.h"
#include "model/kv_cache.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_support.h"

namespace thinkeys {
namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

// Vocabulary 40, two layers, width 16, four heads of 4 (two KV heads in the
// Llama-style families; GPT-2 has no grouped-query attention), 24 hidden, 32
// positions.
ModelConfig tiny(const std::string& model_type) {
  const bool gpt2 = model_type == "gpt2";
  const ModelShape shape{40, 16, 2, 4, gpt2 ? 4 : 2, 4, 24, 32};
  ModelConfig c = gpt2 ? gpt2_config(shape) : llama_config(shape);
  if (!gpt2) {
    c.model_type = model_type;
    if (model_type == "qwen2") {
      c.architecture = "Qwen2ForCausalLM";
      c.qkv_bias = true;
    } else if (model_type == "mistral") {
      c.architecture = "MistralForCausalLM";
    }
  }
  // Ids inside the 40-token vocabulary (gpt2_config keeps GPT-2's 50256).
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

// Names and shapes of the file for tiny(model_type), by hand.
Shapes expected_names(const std::string& model_type) {
  Shapes s;
  if (model_type == "gpt2") {
    s["transformer.wte.weight"] = {40, 16};
    s["transformer.wpe.weight"] = {32, 16};
    for (std::string i : {"0", "1"}) {
      const std::string p = "transformer.h." + i + ".";
      s[p + "ln_1.weight"] = {16};
      s[p + "ln_1.bias"] = {16};
      s[p + "attn.c_attn.weight"] = {16, 48};  // Conv1D [in, out], q|k|v
      s[p + "attn.c_attn.bias"] = {48};
      s[p + "attn.c_proj.weight"] = {16, 16};
      s[p + "attn.c_proj.bias"] = {16};
      s[p + "ln_2.weight"] = {16};
      s[p + "ln_2.bias"] = {16};
      s[p + "mlp.c_fc.weight"] = {16, 24};
      s[p + "mlp.c_fc.bias"] = {24};
      s[p + "mlp.c_proj.weight"] = {24, 16};
      s[p + "mlp.c_proj.bias"] = {16};
    }
    s["transformer.ln_f.weight"] = {16};
    s["transformer.ln_f.bias"] = {16};
    return s;  // tied: no lm_head.weight
  }
  s["model.embed_tokens.weight"] = {40, 16};
  for (std::string i : {"0", "1"}) {
    const std::string p = "model.layers." + i + ".";
    s[p + "input_layernorm.weight"] = {16};
    s[p + "self_attn.q_proj.weight"] = {16, 16};
    s[p + "self_attn.k_proj.weight"] = {8, 16};  // 2 KV heads x 4
    s[p + "self_attn.v_proj.weight"] = {8, 16};
    s[p + "self_attn.o_proj.weight"] = {16, 16};
    if (model_type == "qwen2") {
      s[p + "self_attn.q_proj.bias"] = {16};
      s[p + "self_attn.k_proj.bias"] = {8};
      s[p + "self_attn.v_proj.bias"] = {8};
    }
    s[p + "post_attention_layernorm.weight"] = {16};
    s[p + "mlp.gate_proj.weight"] = {24, 16};
    s[p + "mlp.up_proj.weight"] = {24, 16};
    s[p + "mlp.down_proj.weight"] = {16, 24};
  }
  s["model.norm.weight"] = {16};
  s["lm_head.weight"] = {40, 16};
  return s;
}

Shapes names_in(const std::filesystem::path& dir) {
  Shapes s;
  const SafetensorsFile file(dir / "model.safetensors");
  for (const auto& [name, view] : file.tensors()) s[name] = view.shape;
  return s;
}

float stored_f32(const TensorView& v, int64_t flat) {
  float x;
  std::memcpy(&x, v.bytes.data() + flat * sizeof(float), sizeof(float));
  return x;
}

class HfTensorNames : public ::testing::TestWithParam<std::string> {};

TEST_P(HfTensorNames, LoadSaveLoadRoundTripsUnderTheRealNames) {
  const Model m = random_model(tiny(GetParam()), 7);
  test::TempDir dir;
  const auto first = dir.path() / "first", second = dir.path() / "second";
  std::filesystem::create_directories(first);
  std::filesystem::create_directories(second);

  write_hf_checkpoint(m, first, DType::F32);
  EXPECT_EQ(names_in(first), expected_names(GetParam()));

  const Model loaded = load_hf_checkpoint(first);
  EXPECT_EQ(loaded.config.model_type, GetParam());
  write_hf_checkpoint(loaded, second, DType::F32);
  const Model reloaded = load_hf_checkpoint(second);

  // Every stored tensor comes back bit for bit.
  SafetensorsFile a(first / "model.safetensors"), b(second / "model.safetensors");
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& [name, view] : a.tensors()) {
    ASSERT_TRUE(b.contains(name)) << name;
    EXPECT_EQ(view.shape, b.at(name).shape) << name;
    EXPECT_TRUE(std::equal(view.bytes.begin(), view.bytes.end(), b.at(name).bytes.begin(),
                           b.at(name).bytes.end()))
        << name;
  }
  // And the model computes what it did before saving.
  const auto toks = test::random_tokens(9, m.config.vocab_size, 3);
  KVCache c0(m.config, 9), c1(reloaded.config, 9);
  EXPECT_TRUE(at::equal(forward(m, toks, c0), forward(reloaded, toks, c1)));
}

INSTANTIATE_TEST_SUITE_P(Families, HfTensorNames,
                         ::testing::Values("gpt2", "llama", "mistral", "qwen2"));

// GPT-2's Conv1D stores [in, out] and c_attn's output columns are q, k, v in
// that order: column j of c_attn is row j of [wq; wk; wv].
TEST(HfTensorNamesGpt2, CAttnIsTheTransposedConcatenationOfQKV) {
  const Model m = random_model(tiny("gpt2"), 3);
  test::TempDir dir;
  write_hf_checkpoint(m, dir.path(), DType::F32);
  SafetensorsFile f(dir.path() / "model.safetensors");
  const auto& L = m.weights.layers[1];
  const TensorView& w = f.at("transformer.h.1.attn.c_attn.weight");
  const TensorView& bias = f.at("transformer.h.1.attn.c_attn.bias");
  const TensorView& fc = f.at("transformer.h.1.mlp.c_fc.weight");
  const int64_t D = 16;
  for (int64_t in = 0; in < D; ++in)
    for (int64_t j = 0; j < 3 * D; ++j) {
      const at::Tensor& part = j < D ? L.wq : j < 2 * D ? L.wk : L.wv;
      ASSERT_EQ(stored_f32(w, in * 3 * D + j), part[j % D][in].item<float>()) << in << "," << j;
    }
  for (int64_t j = 0; j < 3 * D; ++j) {
    const at::Tensor& part = j < D ? L.bq : j < 2 * D ? L.bk : L.bv;
    ASSERT_EQ(stored_f32(bias, j), part[j % D].item<float>()) << j;
  }
  // c_fc: [in 16, out 24]; the model's w_up is Linear's [24, 16].
  EXPECT_EQ(stored_f32(fc, 5 * 24 + 17), L.w_up[17][5].item<float>());
}

// Some GPT-2 exports leave "transformer." off every name; they load the same.
TEST(HfTensorNamesGpt2, LoadsWithoutTheTransformerPrefix) {
  const Model m = random_model(tiny("gpt2"), 5);
  test::TempDir dir;
  const auto full = dir.path() / "full", bare = dir.path() / "bare";
  std::filesystem::create_directories(full);
  std::filesystem::create_directories(bare);
  write_hf_checkpoint(m, full, DType::F32);
  {
    SafetensorsFile f(full / "model.safetensors");
    std::vector<TensorToWrite> out;
    for (const auto& [name, v] : f.tensors())
      out.push_back({name.substr(std::string("transformer.").size()), v.dtype, v.shape, v.bytes});
    write_safetensors(bare / "model.safetensors", out);
  }
  std::filesystem::copy_file(full / "config.json", bare / "config.json");
  const Model back = load_hf_checkpoint(bare);
  const auto toks = test::random_tokens(6, m.config.vocab_size, 4);
  KVCache c0(m.config, 6), c1(back.config, 6);
  EXPECT_TRUE(at::equal(forward(m, toks, c0), forward(back, toks, c1)));
}

}  // namespace
}  // namespace thinkeys

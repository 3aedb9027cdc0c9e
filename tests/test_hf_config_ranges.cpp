// config.json integer fields that do not fit an int (found by fuzz_hf_config):
// nlohmann's get<int>() would wrap 2^32 + 5 to 5 or hit undefined behaviour on
// 1e90, so a malformed config could load as a different, valid-looking model.
// Each must be refused with one message naming the field. Also from the fuzzer:
// an architecture and a model_type of different families.
#include <gtest/gtest.h>

#include <string>

#include "io/hf_config.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::string llama_config(const std::string& vocab) {
  return R"({"architectures": ["LlamaForCausalLM"], "vocab_size": )" + vocab +
         R"(, "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
            "num_attention_heads": 8, "num_key_value_heads": 4})";
}

void expect_refused(const std::string& vocab) {
  try {
    (void)parse_hf_config(llama_config(vocab), "config.json");
    ADD_FAILURE() << "vocab_size " << vocab << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'vocab_size'"), std::string::npos) << e.what();
  }
}

TEST(HfConfigRanges, IntegerFieldsOutsideIntAreRefused) {
  expect_refused("4294967301");  // 2^32 + 5: would wrap to 5
  expect_refused("2147483648");  // INT_MAX + 1
  expect_refused("-2147483649");
  expect_refused("3.2e90");  // a float far outside int (undefined behaviour in the cast)
  expect_refused("512.5");   // not integral
  expect_refused("true");    // not a number
}

TEST(HfConfigRanges, IntegralValuesStillLoad) {
  EXPECT_EQ(parse_hf_config(llama_config("512"), "config.json").vocab_size, 512);
  EXPECT_EQ(parse_hf_config(llama_config("512.0"), "config.json").vocab_size, 512);
  EXPECT_EQ(parse_hf_config(llama_config("2147483647"), "config.json").vocab_size, 2147483647);
}

TEST(HfConfigRanges, TokenIdsOutsideIntAreRefused) {
  std::string c = llama_config("512");
  c.insert(c.size() - 1, R"(, "eos_token_id": [4294967298, 2])");
  EXPECT_THROW((void)parse_hf_config(c, "config.json"), Error);
}

TEST(HfConfigRanges, RopeScalingOfTheWrongTypeIsAClearError) {
  std::string c = llama_config("512");
  c.insert(c.size() - 1, R"(, "rope_scaling": "linear")");
  EXPECT_THROW((void)parse_hf_config(c, "config.json"), Error);
  c = llama_config("512");
  c.insert(c.size() - 1, R"(, "rope_scaling": {"rope_type": 3})");
  EXPECT_THROW((void)parse_hf_config(c, "config.json"), Error);
}

TEST(HfConfigRanges, ArchitectureAndModelTypeOfDifferentFamiliesAreRefused) {
  auto with_type = [](const std::string& arch, const std::string& type) {
    std::string c = llama_config("512");
    c.replace(c.find("LlamaForCausalLM"), 16, arch);
    c.insert(c.size() - 1, R"(, "model_type": ")" + type + "\"");
    return c;
  };
  for (const auto& [arch, type] : {std::pair{"LlamaForCausalLM", "gpt2"},
                                   {"Qwen2ForCausalLM", "bert"},
                                   {"GPT2LMHeadModel", "llama"}}) {
    try {
      (void)parse_hf_config(with_type(arch, type), "config.json");
      ADD_FAILURE() << arch << " with model_type " << type << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'model_type' is '" + std::string(type) + "'"),
                std::string::npos)
          << e.what();
    }
  }
  // Within a family the model_type still picks the variant.
  EXPECT_EQ(parse_hf_config(with_type("LlamaForCausalLM", "mistral"), "config.json").model_type,
            "mistral");
  EXPECT_EQ(parse_hf_config(with_type("LlamaForCausalLM", "llama"), "config.json").architecture,
            "LlamaForCausalLM");
}

}  // namespace
}  // namespace thinkeys

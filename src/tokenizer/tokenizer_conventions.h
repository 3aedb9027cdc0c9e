#pragma once
// How a model's authors use its tokenizer: whether text starts with BOS,
// which ids end generation, which special tokens exist by name, and the chat
// template. Read from the Hugging Face files beside the model
// (tokenizer_config.json, generation_config.json, config.json,
// chat_template.jinja) and the tokenizer.json post-processor; without them,
// Hugging Face's defaults for the tokenizer's kind apply.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace thinkeys {

struct TokenizerConventions {
  bool add_bos = false;  // tokenizer(text) starts with BOS
  bool add_eos = false;  // ... and ends with EOS
  std::string bos_rule;  // why add_bos is what it is, for `info`
  std::optional<int32_t> bos_id, eos_id;
  std::string bos_token, eos_token;  // texts, empty when the model has none
  std::optional<std::string> unk_token, pad_token;
  // Every id that ends generation: the EOS token and all of
  // generation_config.json's (or config.json's) eos_token_id.
  std::vector<int32_t> stop_ids;
  // Special and added tokens by their text, longest first. Text containing
  // them is split there, as Hugging Face splits special tokens.
  std::vector<std::pair<std::string, int32_t>> special_tokens;
  std::optional<std::string> chat_template;  // the model's own, if any
  std::string chat_template_origin;          // the file it came from
  std::vector<std::string> files;            // the files that were read

  bool is_stop(int32_t id) const;
  std::optional<int32_t> special_id(std::string_view token) const;

  // Ids of `text` with special tokens recognised by name; with
  // add_special_tokens, BOS/EOS as the rules above say (as Hugging Face's
  // tokenizer(text)). Chat prompts use add_special_tokens=false: the template
  // writes BOS itself. Throws Error if BOS is wanted but unknown.
  std::vector<int32_t> encode(const Tokenizer& tok, std::string_view text,
                              bool add_special_tokens) const;

  nlohmann::json to_json() const;
};

// `model_path` is a model directory or checkpoint file; `tokenizer_dir` is
// where the tokenizer was loaded from when --tokenizer pointed elsewhere
// (its tokenizer_config.json wins). Throws Error for malformed files.
TokenizerConventions load_tokenizer_conventions(const std::filesystem::path& model_path,
                                                const Tokenizer& tok,
                                                const std::filesystem::path& tokenizer_dir = {});

}  // namespace thinkeys

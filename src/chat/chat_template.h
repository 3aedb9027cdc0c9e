#pragma once
// Chat prompts as a model's authors format them: a Jinja chat template
// rendered over the conversation, the way Hugging Face's
// apply_chat_template renders it. Torch-free; the CLI and the server share it.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_conventions.h"

namespace thinkeys::jinja {
class Template;
}

namespace thinkeys::chat {

class ChatTemplate {
 public:
  // Parses `source` once; throws Error naming the line for syntax errors and
  // unsupported constructs. `origin` says where it came from, for messages.
  static ChatTemplate from_source(std::string_view source, std::string origin);
  // chatml, llama2, llama3, mistral.
  static ChatTemplate builtin(std::string_view name);
  static std::vector<std::string> builtin_names();

  // `messages` is a JSON array of {"role": ..., "content": ...} objects (more
  // keys pass through to the template). The template also sees
  // add_generation_prompt, bos_token/eos_token/unk_token/pad_token from the
  // conventions, tools = none, strftime_now() and raise_exception(), and
  // the keys of `extra` (e.g. {"enable_thinking": false}). Throws Error naming
  // the template line for anything the template raises or does that is not
  // supported, and for malformed messages.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const TokenizerConventions& tokens,
                     const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;
  std::string render(const nlohmann::json& messages, bool add_generation_prompt,
                     const TokenizerConventions& tokens) const;

  const std::string& origin() const { return origin_; }

 private:
  std::shared_ptr<const jinja::Template> template_;
  std::string origin_;
};

// What --chat-template NAME|FILE selects: empty means the model's own
// template (conventions.chat_template); otherwise a built-in name or a file
// holding a Jinja template (or a tokenizer_config.json with "chat_template").
// Throws Error listing the choices when the model has none and none is given.
ChatTemplate resolve_chat_template(const std::string& option,
                                   const TokenizerConventions& conventions);

}  // namespace thinkeys::chat

#include "chat/chat_template.h"

#include <fstream>
#include <sstream>

#include "chat/builtin_templates.h"
#include "chat/jinja_template.h"
#include "util/error.h"

namespace thinkeys::chat {
namespace {

using Json = nlohmann::ordered_json;

std::string choices() {
  std::string out;
  for (const BuiltinTemplate& t : kBuiltinTemplates)
    out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out;
}

void check_messages(const Json& messages) {
  if (!messages.is_array())
    throw Error("chat messages must be a JSON array of {role, content} objects");
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string where = "chat message " + std::to_string(i);
    if (!m.is_object()) throw Error(where + " is not an object");
    if (!m.contains("role") || !m["role"].is_string())
      throw Error(where + " has no \"role\" string");
    if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null() &&
        !m["content"].is_array()) {
      throw Error(where + ": \"content\" must be a string, a list or null");
    }
  }
}

}  // namespace

ChatTemplate ChatTemplate::from_source(std::string_view source, std::string origin) {
  ChatTemplate t;
  try {
    t.template_ = std::make_shared<const jinja::Template>(source);
  } catch (const Error& e) {
    throw Error(origin + ": " + e.what());
  }
  t.origin_ = std::move(origin);
  return t;
}

ChatTemplate ChatTemplate::builtin(std::string_view name) {
  for (const BuiltinTemplate& t : kBuiltinTemplates) {
    if (t.name == name)
      return from_source(t.source, "built-in chat template '" + std::string(name) + "'");
  }
  throw Error("no built-in chat template '" + std::string(name) + "' (built-in: " + choices() +
              ")");
}

std::vector<std::string> ChatTemplate::builtin_names() {
  std::vector<std::string> out;
  for (const BuiltinTemplate& t : kBuiltinTemplates) out.emplace_back(t.name);
  return out;
}

std::string ChatTemplate::render(const Json& messages, bool add_generation_prompt,
                                 const TokenizerConventions& tokens, const Json& extra) const {
  check_messages(messages);
  Json vars = Json::object();
  vars["messages"] = messages;
  vars["add_generation_prompt"] = add_generation_prompt;
  vars["tools"] = nullptr;
  vars["documents"] = nullptr;
  // As Hugging Face passes its special_tokens_map: only tokens the model has.
  if (!tokens.bos_token.empty()) vars["bos_token"] = tokens.bos_token;
  if (!tokens.eos_token.empty()) vars["eos_token"] = tokens.eos_token;
  if (tokens.unk_token) vars["unk_token"] = *tokens.unk_token;
  if (tokens.pad_token) vars["pad_token"] = *tokens.pad_token;
  if (!extra.is_object()) throw Error("extra chat template variables must be a JSON object");
  for (auto it = extra.begin(); it != extra.end(); ++it) vars[it.key()] = it.value();
  try {
    return template_->render(vars);
  } catch (const Error& e) {
    throw Error(origin_ + ": " + e.what());
  }
}

std::string ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt,
                                 const TokenizerConventions& tokens) const {
  return render(Json::parse(messages.dump()), add_generation_prompt, tokens);
}

ChatTemplate resolve_chat_template(const std::string& option,
                                   const TokenizerConventions& conventions) {
  if (option.empty()) {
    if (!conventions.chat_template) {
      throw Error(
          "the model has no chat template (no chat_template in tokenizer_config.json, no "
          "chat_template.jinja); pass --chat-template NAME|FILE (built-in: " +
          choices() + ")");
    }
    return ChatTemplate::from_source(*conventions.chat_template,
                                     "chat template from " + conventions.chat_template_origin);
  }
  for (const BuiltinTemplate& t : kBuiltinTemplates) {
    if (t.name == option) return ChatTemplate::builtin(option);
  }
  std::ifstream in(option, std::ios::binary);
  if (!in) {
    throw Error("--chat-template '" + option + "' is neither a built-in template (" + choices() +
                ") nor a readable file");
  }
  std::ostringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  if (option.ends_with(".json")) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw Error("--chat-template '" + option + "' is not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("chat_template") || !j["chat_template"].is_string()) {
      throw Error("--chat-template '" + option + "' has no \"chat_template\" string");
    }
    return ChatTemplate::from_source(j["chat_template"].get<std::string>(),
                                     "chat template '" + option + "'");
  }
  return ChatTemplate::from_source(text, "chat template '" + option + "'");
}

}  // namespace thinkeys::chat
